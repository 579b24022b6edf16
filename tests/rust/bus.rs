//! The node over its control transports (ZeroMQ, and a Unix socket with length-prefixed
//! frames), driven by a Rust controller in this (separate) process. Every protocol test runs
//! on both: `NAME::zmq` and `NAME::unix` (`on_both_transports!`).

use std::collections::BTreeMap;

use spikebus_protocol::{self as proto, ErrorCode, Reason, Reply};

use crate::golden::{decode_trace, load_golden, root};
use crate::node::{
    event, every, read_file, schedule, seed_interval_controller, set, stop, unix_endpoint, watch, Client, Kind, Node,
};

/// For each protocol test `fn NAME(kind: Kind)`, the tests `NAME::zmq` and `NAME::unix`.
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn zmq() {
                super::$name(crate::node::Kind::Zmq)
            }
            #[test]
            fn unix() {
                super::$name(crate::node::Kind::Unix)
            }
        }
    )*};
}
pub(crate) use on_both_transports;

on_both_transports!(
    refused_requests_change_nothing,
    hello_get_and_resent_requests,
    sync_points_fall_where_the_spec_says,
    requests_without_an_id_are_never_resends,
    resends_are_applied_once_whatever_came_between,
    a_second_controller_cannot_move_the_run,
    the_final_request_resent_gets_the_same_done,
);

fn csv_column(text: &str, name: &str) -> Vec<f64> {
    let mut lines = text.lines();
    let k = lines.next().unwrap().split(',').position(|h| h == name).unwrap_or_else(|| panic!("no {name}"));
    lines.map(|l| l.split(',').nth(k).unwrap().parse().unwrap()).collect()
}

/// The acceptance run with a Rust controller: the seed program over the bus gives
/// NEURON's own numbers, over ipc, tcp and unix, and the three runs write identical files.
#[test]
fn seed_callback_over_ipc_tcp_and_unix_is_neuron_exact() {
    let golden = load_golden("seed_interval");
    let tmp = tempfile::tempdir().unwrap();
    let mut outputs = vec![];
    for (kind, ep) in [
        ("ipc", format!("ipc://{}", tmp.path().join("ctl").display())),
        ("tcp", "tcp://127.0.0.1:0".to_string()),
        ("unix", unix_endpoint(tmp.path(), "ctl")),
    ] {
        let out = tmp.path().join(kind);
        let node = Node::start(&["--control", &ep, "--set", "soma.threshold=0", "--out", out.to_str().unwrap()]);
        let done = seed_interval_controller(node.control.as_deref().unwrap());
        assert_eq!(done.reason, proto::EndReason::End);
        assert_eq!(done.step, 20000);
        let (code, _) = node.wait();
        assert_eq!(code, Some(0));
        let traces = String::from_utf8(read_file(&out, "traces.csv")).unwrap();
        for name in &golden.signals {
            let want = decode_trace(&golden.traces[name]);
            let got = csv_column(&traces, name);
            assert_eq!(got.len(), 20001, "{name}");
            let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "{kind}: {name} differs from NEURON in {differ} samples");
        }
        let spikes = String::from_utf8(read_file(&out, "spikes.csv")).unwrap();
        let of = |src: &str| -> Vec<f64> {
            spikes.lines().skip(1).filter(|l| l.starts_with(&format!("{src},"))).map(|l| l[src.len() + 1..].parse().unwrap()).collect()
        };
        assert_eq!(of("ns"), [0.0, 20.0, 450.0]);
        assert_eq!(of("soma"), golden.spikes["soma"]);
        outputs.push((read_file(&out, "traces.csv"), read_file(&out, "spikes.csv")));
    }
    assert!(outputs[0] == outputs[1], "ipc and tcp runs wrote different files");
    assert!(outputs[0] == outputs[2], "ipc and unix runs wrote different files");
}

/// Every valid request example of schemas/examples decodes; every invalid one is refused.
#[test]
fn schema_examples_decode_as_the_schemas_say() {
    let mut checked = 0;
    for msg in ["hello.request", "get.request", "continue.request", "export.request"] {
        for (kind, should_decode) in [("valid", true), ("invalid", false)] {
            let dir = root().join("schemas/examples").join(msg).join(kind);
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.unwrap().path();
                let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let bytes = rmp_serde::to_vec_named(&json).unwrap();
                let got = proto::decode_request(&bytes);
                assert_eq!(got.is_ok(), should_decode, "{}: {got:?}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} examples");
}

#[derive(serde::Deserialize)]
struct Refused {
    request: serde_json::Value,
    code: ErrorCode,
    /// Where the node is paused when it is sent: `start` or `step`.
    point: String,
}

const REFUSED_DIRS: [&str; 4] =
    ["continue.request/refused", "get.request/refused", "hello.request/refused", "export.request/refused"];

/// Every refused example, with its path.
fn refused_examples() -> Vec<(std::path::PathBuf, Refused)> {
    let mut cases = vec![];
    for dir in REFUSED_DIRS {
        let dir = root().join("schemas/examples").join(dir);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let case: Refused = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(["start", "step"].contains(&case.point.as_str()), "{}: point {}", path.display(), case.point);
            cases.push((path, case));
        }
    }
    cases
}

/// Sends every refused example meant for `point` (`step`: a sync point after t = 0.1 ms that
/// `c` owns); each must get its documented error code.
fn send_refused(c: &Client, point: &str) -> usize {
    let mut refused = 0;
    for (path, case) in refused_examples() {
        if case.point != point {
            continue;
        }
        let bytes = rmp_serde::to_vec_named(&case.request).unwrap();
        match c.raw(&bytes) {
            Reply::Error(e) => assert_eq!(e.code, case.code, "{}: {e:?}", path.display()),
            other => panic!("{}: accepted: {other:?}", path.display()),
        }
        refused += 1;
    }
    refused
}

/// Requests the schemas allow but the node must refuse get the documented error code, and
/// none of them changes the run: its files equal an undisturbed run's, byte for byte.
fn refused_requests_change_nothing(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, disturb: bool| {
        let out = tmp.path().join(name);
        let node = Node::start(&["--control", &kind.control(tmp.path()), "--set", "tstop=20", "--out", out.to_str().unwrap()]);
        let mut c = Client::connect(node.control.as_deref().unwrap());
        // Sent at step 14 (t = 0.35), so that every example meant for `step` is refused there.
        let mut refused = 0;
        if disturb {
            refused += send_refused(&c, "start");
        }
        let mut r = c.sync(vec![every(7), watch(&["soma.v"])]);
        while !r.body.reasons.contains(&Reason::End) {
            if disturb && r.body.step == 14 {
                refused += send_refused(&c, "step");
                for garbage in [&b"\xff\x00garbage"[..], b"", b"\x93\x01\x02\x03", b"\x81\xa2op\xa3fly"] {
                    assert!(matches!(c.raw(garbage), Reply::Error(_)));
                }
                assert_eq!(refused, refused_examples().len(), "an example was not sent");
            }
            r = c.sync(vec![]);
        }
        assert!(!disturb || refused >= 30, "only {refused} refused examples");
        assert!(matches!(c.cont(vec![]), Reply::Done(_)));
        // The node lingers while a controller is connected.
        drop(c);
        assert_eq!(node.wait().0, Some(0));
        (read_file(&out, "traces.csv"), read_file(&out, "spikes.csv"))
    };
    let calm = run("calm", false);
    let disturbed = run("disturbed", true);
    assert!(calm == disturbed, "refused requests changed the run");
}

/// hello describes the model and the pending point; get reads without advancing; a resent
/// request gets the same reply and is applied once; a reader mid-run takes over explicitly.
fn hello_get_and_resent_requests(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(&["--control", &kind.control(tmp.path()), "--set", "tstop=5", "--out", tmp.path().to_str().unwrap()]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    let h = c.hello();
    assert_eq!((h.protocol, h.dt, h.tstop, h.step), (2, 0.025, 5.0, 0));
    assert_eq!(h.owner, None);
    assert!(h.client.starts_with("peer-"), "{}", h.client);
    assert_eq!(h.sources, ["soma", "ns"]);
    assert_eq!(h.targets, ["syn", "ns", "nc"]);
    assert!(h.signals.contains(&"soma.m_hh".to_string()));
    let p = h.params.iter().find(|p| p.name == "soma.nseg").unwrap();
    assert!(!p.writable);

    // A continue sent twice (a retry) advances once.
    let req = proto::encode(&proto::Request::Continue(proto::Continue {
        id: Some(77),
        client: None,
        actions: vec![every(10), set("syn.tau", 5.0)],
    }));
    let first = c.raw(&req);
    let again = c.raw(&req);
    assert_eq!(first, again);
    let Reply::Sync(s) = first else { panic!() };
    assert_eq!(s.body.step, 0);
    let Reply::Sync(next) = c.cont(vec![]) else { panic!() };
    assert_eq!(next.body.step, 10, "the resent request was applied twice");

    match c.request(proto::Request::Get(proto::Get { id: Some(5), client: None, names: vec!["syn.tau".into(), "soma.v".into()] })) {
        Reply::Values(v) => {
            assert_eq!(v.values["syn.tau"], 5.0);
            assert_eq!(v.step, 10);
        }
        r => panic!("{r:?}"),
    }
    // A new controller mid-run sees where the run is and who owns it; it may read, but it
    // moves the run only after taking it over.
    let mut other = Client::connect(node.control.as_deref().unwrap());
    let h2 = other.hello();
    assert_eq!(h2.pending.report().body.step, 10);
    assert_eq!(h2.schedule.every, 10);
    assert_eq!(h2.owner.as_deref(), Some(h.client.as_str()));
    match other.cont(vec![stop()]) {
        Reply::Error(e) => assert_eq!(e.code, ErrorCode::NotOwner, "{e:?}"),
        r => panic!("a non-owner moved the run: {r:?}"),
    }
    let h3 = other.takeover();
    assert_eq!(h3.owner.as_deref(), Some(h2.client.as_str()));
    match c.cont(vec![]) {
        Reply::Error(e) => assert_eq!(e.code, ErrorCode::NotOwner, "{e:?}"),
        r => panic!("the previous owner moved the run: {r:?}"),
    }
    let stop = other.cont(vec![stop()]);
    assert!(matches!(stop, Reply::Done(proto::DoneReply { reason: proto::EndReason::Stop, .. })), "{stop:?}");
    drop((c, other));
    assert_eq!(node.wait().0, Some(0));
}

/// Sync points: FInitializeHandler types, at-times (NEURON's CVode.event timing), spikes.
fn sync_points_fall_where_the_spec_says(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    // The seed model with NEURON's golden first soma spike (tests/golden/seed.json).
    let node = Node::start(&["--control", &kind.control(tmp.path()), "--set", "tstop=30", "--set", "soma.threshold=0", "--out", out]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    let at = proto::Schedule { add_at: Some(vec![0.1, 12.0]), init: Some(vec![0, 1, 2, 3]), ..Default::default() };
    let r = c.sync(vec![schedule(at), watch(&["syn.g", "soma.m_hh", "soma.v"])]);
    assert_eq!(r.body.reasons, [Reason::Init3]);
    let r = c.sync(vec![]);
    assert_eq!(r.body.reasons, [Reason::Init0]);
    assert_eq!(r.body.values["soma.v"], -65.0);
    // At type 1, INITIAL has run but the t = 0 events have not: syn.g is still 0.
    let r = c.sync(vec![]);
    assert_eq!(r.body.reasons, [Reason::Init1]);
    assert_eq!(r.body.values["syn.g"], 0.0);
    assert_eq!(r.body.values["soma.m_hh"], 0.05293248525724958);
    // Type 2: initialization done, the NetStim's t = 0 spike delivered.
    let r = c.sync(vec![]);
    assert_eq!(r.body.reasons, [Reason::Init2]);
    assert_eq!(r.body.values["syn.g"], 0.1);
    assert_eq!(r.body.spikes, [proto::SpikeRecord { source: "ns".into(), t: 0.0 }]);
    let r = c.sync(vec![]);
    assert_eq!(r.body.reasons, [Reason::At]);
    assert_eq!(r.body.at, [0.1]);
    // CVode.event(0.1) in NEURON's fixed step: h.t = 0.09999999999999999 (step 4).
    assert_eq!((r.body.t, r.body.step), (0.09999999999999999, 4));
    let r = c.sync(vec![schedule(proto::Schedule {
        remove_at: Some(vec![12.0]),
        on_spike: Some(vec!["soma".into()]),
        ..Default::default()
    })]);
    assert_eq!(r.body.reasons, [Reason::Spike]);
    // NetCon.record's callback runs with h.t at the spike time, t_n + 1e-10.
    let spike = r.body.spike.clone().expect("the spike of this point");
    assert_eq!((spike.source.as_str(), spike.t), ("soma", 3.850000000100021));
    assert_eq!(r.body.t, spike.t);
    assert_eq!(r.body.step, 154);
    let mut reasons = BTreeMap::new();
    let mut r = c.sync(vec![]);
    while !r.body.reasons.contains(&Reason::End) {
        for x in &r.body.reasons {
            *reasons.entry(format!("{x:?}")).or_insert(0) += 1;
        }
        r = c.sync(vec![]);
    }
    assert_eq!(reasons.keys().collect::<Vec<_>>(), ["Spike"], "no at-sync after its removal");
    assert!(matches!(c.cont(vec![]), Reply::Done(_)));
}

/// A `continue` without an id is never a resend: five of them advance five sync points.
fn requests_without_an_id_are_never_resends(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(&["--control", &kind.control(tmp.path()), "--set", "tstop=1", "--out", tmp.path().to_str().unwrap()]);
    let c = Client::connect(node.control.as_deref().unwrap());
    let first = proto::encode(&proto::Request::Continue(proto::Continue { actions: vec![every(1)], ..Default::default() }));
    assert!(matches!(c.raw(&first), Reply::Sync(s) if s.body.step == 0));
    let bare = b"\x81\xa2op\xa8continue";
    let steps: Vec<u64> = (0..5)
        .map(|_| match c.raw(bare) {
            Reply::Sync(s) => s.body.step,
            r => panic!("{r:?}"),
        })
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5]);
}

/// A resend after a lost reply is answered from the kept replies even when other requests
/// came in between (another client's get, a stray byte): it is applied once, and a resent
/// event is not refused as past.
fn resends_are_applied_once_whatever_came_between(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(&["--control", &kind.control(tmp.path()), "--set", "tstop=5", "--out", tmp.path().to_str().unwrap()]);
    let ep = node.control.clone().unwrap();
    let mut c = Client::connect(&ep);
    let bystander = Client::connect(&ep);
    let continue_with = |id: u64, actions| {
        proto::encode(&proto::Request::Continue(proto::Continue { id: Some(id), client: Some("ctl-a".into()), actions }))
    };
    let a = continue_with(1, vec![every(4)]);
    let first = c.raw(&a);
    let get = proto::encode(&proto::Request::Get(proto::Get { id: Some(1), client: None, names: vec!["soma.v".into()] }));
    assert!(matches!(bystander.raw(&get), Reply::Values(_)));
    assert!(matches!(bystander.raw(b"\x00"), Reply::Error(_)));
    assert_eq!(c.raw(&a), first, "a resend got another reply");
    let b = continue_with(2, vec![event("syn", 0.2, Some(0.01))]);
    let Reply::Sync(after_b) = c.raw(&b) else { panic!() };
    assert_eq!(after_b.body.step, 4);
    assert!(matches!(bystander.raw(b"\xc1"), Reply::Error(_)));
    // The same bytes again, from a new connection (the client's name is the same).
    let c2 = Client::connect(&ep);
    assert_eq!(c2.raw(&b), Reply::Sync(after_b.clone()), "the resent event was refused or applied again");
    let Reply::Sync(next) = c.raw(&continue_with(3, vec![])) else { panic!() };
    assert_eq!(next.body.step, 8, "a resend was applied twice");
    // Sixteen later requests still leave the reply to the first one.
    let mut r = next;
    for id in 4..18 {
        if r.body.reasons.contains(&Reason::End) {
            break;
        }
        let Reply::Sync(s) = c.raw(&continue_with(id, vec![])) else { panic!() };
        r = s;
    }
    assert_eq!(c.raw(&b), Reply::Sync(after_b));
    let _ = c.cont(vec![stop()]);
}

/// Two controllers on one node: the first to continue owns the run, every request of the
/// other is answered (not_owner) and changes nothing, and the seed program still gives
/// NEURON's numbers.
fn a_second_controller_cannot_move_the_run(kind: Kind) {
    let golden = load_golden("seed_interval");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let node = Node::start(&["--control", &kind.control(tmp.path()), "--set", "soma.threshold=0", "--out", out.to_str().unwrap()]);
    let ep = node.control.clone().unwrap();
    let owner = std::thread::spawn({
        let ep = ep.clone();
        move || seed_interval_controller(&ep)
    });
    let mut intruder = Client::connect(&ep);
    let mut refused = 0;
    loop {
        let h = intruder.hello();
        if h.owner.is_none() {
            continue;
        }
        match intruder.cont(vec![set("ns.interval", 1.0)]) {
            Reply::Error(e) if e.code == ErrorCode::NotOwner => refused += 1,
            Reply::Error(e) if e.code == ErrorCode::WrongState => break,
            r => panic!("the intruder got {r:?}"),
        }
        if refused >= 200 || owner.is_finished() {
            break;
        }
    }
    assert!(refused >= 50, "only {refused} attempts");
    let done = owner.join().unwrap();
    assert_eq!(done.reason, proto::EndReason::End);
    drop(intruder);
    assert_eq!(node.wait().0, Some(0));
    let spikes = String::from_utf8(read_file(&out, "spikes.csv")).unwrap();
    let ns: Vec<f64> = spikes.lines().filter_map(|l| l.strip_prefix("ns,")).map(|t| t.parse().unwrap()).collect();
    assert_eq!(ns, [0.0, 20.0, 450.0]);
    let soma: Vec<f64> = spikes.lines().filter_map(|l| l.strip_prefix("soma,")).map(|t| t.parse().unwrap()).collect();
    assert_eq!(soma, golden.spikes["soma"]);
}

/// After `done`, the node lingers: the final request resent gets the same `done`.
fn the_final_request_resent_gets_the_same_done(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(&["--control", &kind.control(tmp.path()), "--set", "tstop=1", "--out", tmp.path().to_str().unwrap()]);
    let ep = node.control.clone().unwrap();
    let c = Client::connect(&ep);
    let fin = proto::encode(&proto::Request::Continue(proto::Continue {
        id: Some(9),
        client: Some("ctl".into()),
        actions: vec![stop()],
    }));
    let done = c.raw(&fin);
    assert!(matches!(done, Reply::Done(_)), "{done:?}");
    // As if that reply had been lost: the same request from a fresh connection.
    let again = Client::connect(&ep);
    assert_eq!(again.raw(&fin), done);
    assert!(matches!(again.raw(&proto::encode(&proto::Request::Continue(proto::Continue::default()))), Reply::Error(e) if e.code == ErrorCode::WrongState));
    drop((c, again));
    let started = std::time::Instant::now();
    assert_eq!(node.wait().0, Some(0));
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "the node lingered with nobody connected");
}

/// The state stream: one message per step, in order, equal to traces.csv; spikes; lifecycle.
#[test]
fn state_stream_matches_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(&[
        "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "1", "--pub-batch", "7", "--set", "tstop=25",
        "--out", tmp.path().to_str().unwrap(),
    ]);
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_rcvtimeo(30_000).unwrap();
    sub.connect(node.publish.as_deref().unwrap()).unwrap();
    sub.set_subscribe(b"").unwrap();
    let mut t = vec![];
    let mut v = vec![];
    let mut spikes = 0;
    let mut seq = vec![];
    loop {
        let parts = sub.recv_multipart(0).expect("stream message");
        let map: BTreeMap<String, rmpv_like::Any> = rmp_serde::from_slice(&parts[1]).unwrap();
        seq.push(map["seq"].as_u64());
        match &parts[0][..] {
            b"state" => {
                t.extend(map["t"].as_f64s());
                v.extend(map["soma.v"].as_f64s());
            }
            b"spike" => spikes += 1,
            b"done" => break,
            b"started" => assert!(t.is_empty()),
            other => panic!("topic {other:?}"),
        }
    }
    assert_eq!(seq, (0..seq.len() as u64).collect::<Vec<_>>(), "no gaps");
    let traces = String::from_utf8(read_file(tmp.path(), "traces.csv")).unwrap();
    let want_t = csv_column(&traces, "t");
    let want_v = csv_column(&traces, "soma.v");
    assert_eq!(t.len(), 1001);
    assert!(t.iter().zip(&want_t).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(v.iter().zip(&want_v).all(|(a, b)| a.to_bits() == b.to_bits()));
    let spikes_csv = String::from_utf8(read_file(tmp.path(), "spikes.csv")).unwrap();
    assert_eq!(spikes, spikes_csv.lines().count() - 1);
    assert_eq!(node.wait().0, Some(0));
}

mod rmpv_like {
    /// Just enough of a MessagePack value for the stream test.
    #[derive(serde::Deserialize, Debug)]
    #[serde(untagged)]
    pub enum Any {
        U(u64),
        F(f64),
        // Strings (topics' text fields) are read past, not inspected.
        S(#[allow(dead_code)] String),
        L(Vec<Any>),
        // nil (done's `error`).
        Nil(()),
        // done's `telemetry`.
        M(#[allow(dead_code)] std::collections::BTreeMap<String, Any>),
    }
    impl Any {
        pub fn as_u64(&self) -> u64 {
            match self {
                Any::U(u) => *u,
                a => panic!("{a:?}"),
            }
        }
        pub fn as_f64s(&self) -> Vec<f64> {
            match self {
                Any::L(l) => l
                    .iter()
                    .map(|x| match x {
                        Any::F(f) => *f,
                        Any::U(u) => *u as f64,
                        a => panic!("{a:?}"),
                    })
                    .collect(),
                a => panic!("{a:?}"),
            }
        }
    }
}
