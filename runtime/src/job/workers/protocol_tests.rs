use super::*;

fn round_trip(msg: &ControlMsg) -> (String, ControlMsg) {
    let mut out = Vec::new();
    encode(&mut out, "job/3", msg);
    let len = u32::from_le_bytes([out[0], out[1], out[2], out[3]]) as usize;
    assert_eq!(len, out.len() - 4, "length prefix of {msg:?}");
    decode(&out[4..]).unwrap_or_else(|e| panic!("{msg:?}: {e}"))
}

fn task(chain: usize, subtask: u32) -> TaskId {
    TaskId { chain, subtask }
}

#[test]
fn every_message_decodes_to_itself_with_its_attempt() {
    let ack = TaskAck {
        checkpoint: CheckpointId(42),
        task: task(2, 7),
        states: vec![TaskState {
            node: "win".into(),
            subtask: 7,
            parallelism: 8,
            files: Vec::new(),
            operator_state: vec![serde_json::json!({"split": 3, "next": 900})],
            committables: vec![serde_json::json!("tmp-1")],
        }],
        alignment_us: 1234,
        records: 99_000,
    };
    let msgs = vec![
        ControlMsg::Hello { version: VERSION, worker: 2, count: 3, job: u64::MAX - 5 },
        ControlMsg::Welcome,
        ControlMsg::Refuse("no".into()),
        ControlMsg::Start { restore: None },
        ControlMsg::Start { restore: Some("file:///c/manifests/chk-1.json".into()) },
        ControlMsg::Ready,
        ControlMsg::Control(
            task(1, 2),
            TaskControl::Trigger(Barrier { id: CheckpointId(5), kind: BarrierKind::StopSavepoint }),
        ),
        ControlMsg::Control(task(0, 0), TaskControl::Complete(CheckpointId(6))),
        ControlMsg::Control(task(0, 1), TaskControl::Abort(CheckpointId(7))),
        ControlMsg::Control(task(3, 0), TaskControl::EndInput),
        ControlMsg::Control(task(3, 1), TaskControl::Cancel),
        ControlMsg::Cancel(None),
        ControlMsg::Cancel(Some(CheckpointId(9))),
        ControlMsg::Event(TaskEvent::Ack(ack.clone())),
        ControlMsg::Event(TaskEvent::Decline { checkpoint: CheckpointId(3), task: task(1, 1), reason: "disk".into() }),
        ControlMsg::Event(TaskEvent::SourceFinished(task(0, 4))),
        ControlMsg::Ended(task(1, 0), None),
        ControlMsg::Ended(
            task(1, 1),
            Some(RemoteFailure { kind: ErrorKind::DataLossRisk, symptom: true, message: "node x: boom".into() }),
        ),
        ControlMsg::Heartbeat,
        ControlMsg::Bye,
    ];
    for msg in &msgs {
        let (attempt, back) = round_trip(msg);
        assert_eq!(attempt, "job/3");
        // The types have no PartialEq (TaskEvent); their debug forms say every field.
        assert_eq!(format!("{back:?}"), format!("{msg:?}"));
    }
    let (_, back) = round_trip(&ControlMsg::Event(TaskEvent::Ack(ack.clone())));
    let ControlMsg::Event(TaskEvent::Ack(a)) = back else { panic!("an ack") };
    assert_eq!(a, ack);
}

#[test]
fn truncated_trailing_and_foreign_frames_are_refused() {
    let mut out = Vec::new();
    encode(&mut out, "a", &ControlMsg::Control(task(1, 2), TaskControl::Complete(CheckpointId(300))));
    let body = &out[4..];
    for cut in 0..body.len() {
        assert!(decode(&body[..cut]).is_err(), "cut at {cut} decoded");
    }
    let mut long = body.to_vec();
    long.push(0);
    assert!(decode(&long).expect_err("trailing").0.contains("left over"));
    let mut hello = Vec::new();
    encode(&mut hello, "a", &ControlMsg::Hello { version: VERSION, worker: 1, count: 2, job: 7 });
    let mut exchange_hello = hello[4..].to_vec();
    let at = exchange_hello.iter().position(|&b| b == b'S').expect("magic");
    exchange_hello[at..at + 8].copy_from_slice(b"SLUICENX");
    assert!(decode(&exchange_hello).expect_err("foreign").0.contains("not a Sluice control hello"));
    assert!(decode(&[99, 0]).expect_err("unknown").0.contains("unknown control frame kind 99"));
}
