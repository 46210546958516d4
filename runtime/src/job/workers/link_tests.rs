use super::*;

fn config(attempt: &str, count: usize) -> LinkConfig {
    LinkConfig {
        attempt: attempt.into(),
        count,
        job: 0x5eed,
        connect_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(2),
        heartbeat: Duration::from_millis(50),
        heartbeat_timeout: Duration::from_millis(500),
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    (l, a)
}

#[tokio::test]
async fn workers_of_the_attempt_join_and_talk_both_ways() {
    let (l, addr) = listener().await;
    let coord = tokio::spawn(async move { accept_all(l, &config("a/1", 3)).await });
    let mut one = connect(addr, 1, &config("a/1", 3)).await.expect("worker 1 joins");
    let two = connect(addr, 2, &config("a/1", 3)).await.expect("worker 2 joins");
    let mut links = coord.await.expect("join").expect("all joined");
    assert_eq!(links.iter().map(|l| l.worker).collect::<Vec<_>>(), vec![1, 2]);
    links[0].tx.send(ControlMsg::Start { restore: None }).expect("send");
    match one.rx.recv().await {
        Some(Ok(ControlMsg::Start { restore: None })) => {}
        other => panic!("{other:?}"),
    }
    one.tx.send(ControlMsg::Ready).expect("send");
    // Heartbeats flow but are not handed on: the next message is the Ready.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(links[0].rx.recv().await, Some(Ok(ControlMsg::Ready))));
    drop(two);
    match links[1].rx.recv().await {
        Some(Err(reason)) => assert!(reason.contains("closed"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_worker_of_another_attempt_or_count_cannot_join_and_late_comers_are_refused() {
    let (l, addr) = listener().await;
    let coord = tokio::spawn(async move { accept_all(l, &config("job/2", 2)).await });
    let err = connect(addr, 1, &config("job/1", 2)).await.err().expect("an older attempt is refused");
    let text = err.to_string();
    assert!(text.contains("attempt \"job/1\" is not this coordinator's attempt \"job/2\""), "{text}");
    let err = connect(addr, 1, &config("job/2", 3)).await.err().expect("another worker count is refused");
    assert!(err.to_string().contains("3 workers expected"), "{err}");
    let mut edited = config("job/2", 2);
    edited.job = 0x5eee;
    let err = connect(addr, 1, &edited).await.err().expect("another job document is refused");
    assert!(err.to_string().contains("worker 1 runs another job document than worker 0"), "{err}");
    let _one = connect(addr, 1, &config("job/2", 2)).await.expect("the right worker joins");
    coord.await.expect("join").expect("joined");
    let err = connect(addr, 1, &config("job/2", 2)).await.err().expect("a second worker 1 is refused");
    assert!(err.to_string().contains("already joined"), "{err}");
}

#[tokio::test]
async fn silence_beyond_the_heartbeat_timeout_is_a_lost_connection() {
    let (l, addr) = listener().await;
    // A peer that completes the handshake and then says nothing, ever.
    let mute = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let mut body = Vec::new();
        read_frame(&mut s, &mut body).await.expect("hello");
        let mut buf = Vec::new();
        protocol::encode(&mut buf, "m", &ControlMsg::Welcome);
        s.write_all(&buf).await.expect("welcome");
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let mut link = connect(addr, 1, &config("m", 2)).await.expect("joined");
    match link.rx.recv().await {
        Some(Err(reason)) => assert!(reason.contains("no heartbeat"), "{reason}"),
        other => panic!("{other:?}"),
    }
    mute.abort();
}

#[tokio::test]
async fn a_coordinator_that_never_comes_is_named_after_the_connect_timeout() {
    let (l, addr) = listener().await;
    drop(l);
    let mut c = config("x", 2);
    c.connect_timeout = Duration::from_millis(300);
    let err = connect(addr, 1, &c).await.err().expect("unreachable");
    assert!(err.to_string().contains("worker 0 (the coordinator"), "{err}");
    let (l, _) = listener().await;
    let err =
        accept_all(l, &config("x", 3).with_connect_timeout(Duration::from_millis(200))).await.err().expect("no one");
    assert!(err.to_string().contains("[1, 2] did not join"), "{err}");
}

impl LinkConfig {
    fn with_connect_timeout(mut self, t: Duration) -> LinkConfig {
        self.connect_timeout = t;
        self
    }
}
