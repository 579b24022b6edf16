//! Decoding requests: typed results, and errors that say what and where.

use spikebus_protocol::*;

fn enc(v: &impl serde::Serialize) -> Vec<u8> {
    encode(v)
}

#[test]
fn decodes_requests_with_named_fields() {
    let req = Request::Continue {
        id: Some(7),
        actions: vec![
            Action::Set { name: "ns.interval".into(), value: 30.0 },
            Action::Event { target: "syn".into(), t: 1.5, weight: Some(0.1) },
            Action::Schedule { every: Some(1), add_at: None, remove_at: None, on_spike: Some(vec!["soma".into()]), init: None },
            Action::Watch { values: Some(vec!["soma.v".into()]), spikes: None },
            Action::Stop {},
        ],
    };
    assert_eq!(decode_request(&enc(&req)).unwrap(), req);
}

#[derive(serde::Serialize)]
struct Loose<'a> {
    op: &'a str,
    id: u64,
    actions: Vec<std::collections::BTreeMap<&'a str, rmpv_like::V>>,
}

mod rmpv_like {
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    pub enum V {
        S(&'static str),
        I(i64),
    }
}

#[test]
fn integers_are_numbers_too() {
    use rmpv_like::V;
    let action = [("op", V::S("set")), ("name", V::S("ns.interval")), ("value", V::I(30))].into_iter().collect();
    let bytes = enc(&Loose { op: "continue", id: 1, actions: vec![action] });
    match decode_request(&bytes).unwrap() {
        Request::Continue { actions, .. } => assert_eq!(actions[0], Action::Set { name: "ns.interval".into(), value: 30.0 }),
        r => panic!("{r:?}"),
    }
}

#[test]
fn errors_name_code_and_field() {
    use rmpv_like::V;
    let e = decode_request(b"\x01\x02").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    let e = decode_request(b"not msgpack at all").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);

    let action = [("op", V::S("teleport"))].into_iter().collect();
    let e = decode_request(&enc(&Loose { op: "continue", id: 1, actions: vec![action] })).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownOp, "{e:?}");
    assert_eq!(e.field.as_deref(), Some("actions[0].op"), "{e:?}");

    let action = [("op", V::S("set")), ("name", V::S("x"))].into_iter().collect();
    let e = decode_request(&enc(&Loose { op: "continue", id: 1, actions: vec![action] })).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(e.message.contains("value"), "{e:?}");

    let action = [("op", V::S("set")), ("name", V::S("x")), ("value", V::S("big"))].into_iter().collect();
    let e = decode_request(&enc(&Loose { op: "continue", id: 1, actions: vec![action] })).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(e.field.as_deref().unwrap_or("").starts_with("actions[0]"), "{e:?}");

    let e = decode_request(&enc(&Loose { op: "fly", id: 1, actions: vec![] })).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownOp);

    let mut bytes = enc(&Request::<Action>::Hello { id: Some(1), protocol: 1 });
    bytes.push(0xc0);
    assert_eq!(decode_request(&bytes).unwrap_err().code, ErrorCode::BadMessage);
}

#[test]
fn unknown_fields_are_refused() {
    #[derive(serde::Serialize)]
    struct Extra {
        op: &'static str,
        protocol: u32,
        colour: &'static str,
    }
    let e = decode_request(&enc(&Extra { op: "hello", protocol: 1, colour: "red" })).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(e.message.contains("colour"), "{e:?}");
}
