//! `GET /v1/job` against a running job: the graph is the job document's (nodes in order, their
//! kinds and tasks, every edge) and each node carries live figures.

use sluice_crds::JobConfig;
use sluice_crds::contract::job_view::JobView;

use super::*;

fn job_view(job: &Job) -> JobView {
    let (status, body) = common::http(&job.addr, "GET", "/v1/job", None).expect("GET /v1/job");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not a JobView: {e}: {body}"))
}

#[test]
fn the_job_view_is_the_job_documents_graph_with_live_figures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut job = start(tmp.path(), &[]);
    job.wait_checkpoints(1);
    let doc = JobConfig::from_yaml(&std::fs::read_to_string(tmp.path().join("job.yaml")).expect("job.yaml"))
        .expect("the test's job document");
    // Let the rates settle over more than a second of running.
    std::thread::sleep(Duration::from_millis(1_200));
    let view = job_view(&job);
    assert_eq!((view.name.as_str(), view.run_id.as_str(), view.state), ("control-test", "c1", JobState::Running));
    let ids: Vec<_> = view.nodes.iter().map(|n| n.id.as_str()).collect();
    let doc_ids: Vec<_> = doc.pipeline.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, doc_ids);
    let edges: Vec<_> = view.edges.iter().map(|e| (e.from.as_str(), e.to.as_str(), e.partition, e.output)).collect();
    let doc_edges: Vec<_> =
        doc.pipeline.edges.iter().map(|e| (e.from.as_str(), e.to.as_str(), e.partition, e.output)).collect();
    assert_eq!(edges, doc_edges);
    let shape: Vec<_> = view.nodes.iter().map(|n| (n.kind.as_str(), n.parallelism, n.task.as_str())).collect();
    assert_eq!(shape, [("generator", 1, "gen"), ("window", 1, "win"), ("fileSink", 1, "win")], "out is chained to win");

    let window = view.window_ms.expect("a measuring window once the job ran");
    assert!(window >= 1_000, "measured over {window} ms");
    let source = &view.nodes[0];
    let rate = source.records_out_per_second.expect("gen's rate");
    // The generator is throttled to 2,000 records/s.
    assert!(rate > 200.0 && rate < 4_000.0, "gen emits {rate}/s");
    assert!(source.records_out > 0 && view.nodes[1].records_in > 0, "{view:?}");
    for n in &view.nodes {
        assert!(n.records_in_per_second.is_some() && n.records_out_per_second.is_some(), "{n:?}");
        let (busy, idle, bp) = (n.busy.expect("busy"), n.idle.expect("idle"), n.backpressured.expect("bp"));
        assert!((busy + idle + bp - 1.0).abs() < 1e-6, "fractions of the task's time: {n:?}");
    }
    let wm = view.nodes[1].watermark_ms.expect("the window has a watermark");
    assert!(wm > 0, "{wm}");
    // The watermark moves on with the job.
    let start = Instant::now();
    while job_view(&job).nodes[1].watermark_ms <= Some(wm) {
        assert!(start.elapsed() < Duration::from_secs(30), "the watermark stays at {wm}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(job.finish().success());
}
