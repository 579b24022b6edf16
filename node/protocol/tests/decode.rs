//! Decoding requests: typed results, and errors that say what and where.

use rmpv::Value;
use spikebus_protocol::*;

fn enc(v: &impl serde::Serialize) -> Vec<u8> {
    encode(v)
}

fn enc_v(v: Value) -> Vec<u8> {
    let mut b = vec![];
    rmpv::encode::write_value(&mut b, &v).unwrap();
    b
}

fn s(x: &str) -> Value {
    Value::String(x.into())
}

fn map(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(fields.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn err(v: Value) -> DecodeError {
    decode_request(&enc_v(v)).unwrap_err()
}

fn continue_with(action: Vec<(&str, Value)>) -> Value {
    map(vec![("op", s("continue")), ("id", Value::from(1)), ("actions", Value::Array(vec![map(action)]))])
}

#[test]
fn decodes_requests_with_named_fields() {
    let req = Request::Continue(Continue {
        id: Some(7),
        client: Some("agent-1".into()),
        actions: vec![
            Action::Set(Set { name: "ns.interval".into(), value: 30.0 }),
            Action::Event(Event { target: "syn".into(), t: 1.5, weight: Some(0.1) }),
            Action::Schedule(Schedule {
                every: Some(1),
                scatter_gather: Some(2),
                on_spike: Some(vec!["soma".into()]),
                init: Some(vec![0, 2]),
                ..Default::default()
            }),
            Action::Watch(Watch { values: Some(vec!["soma.v".into()]), ..Default::default() }),
            Action::Stop(Stop {}),
        ],
    });
    assert_eq!(decode_request(&enc(&req)).unwrap(), req);
    let hello = Request::Hello(Hello { id: None, client: None, protocol: PROTOCOL_VERSION, takeover: true });
    assert_eq!(decode_request(&enc(&hello)).unwrap(), hello);
}

#[test]
fn integers_are_numbers_too() {
    let v = continue_with(vec![("op", s("set")), ("name", s("ns.interval")), ("value", Value::from(30))]);
    match decode_request(&enc_v(v)).unwrap() {
        Request::Continue(c) => assert_eq!(c.actions[0], Action::Set(Set { name: "ns.interval".into(), value: 30.0 })),
        r => panic!("{r:?}"),
    }
}

/// A field of the wrong type is named by its exact path.
#[test]
fn type_errors_name_the_exact_field() {
    let cases: Vec<(Value, &str)> = vec![
        (continue_with(vec![("op", s("schedule")), ("every", Value::F64(5.0))]), "actions[0].every"),
        (continue_with(vec![("op", s("schedule")), ("every", Value::from(-1))]), "actions[0].every"),
        (continue_with(vec![("op", s("schedule")), ("init", Value::Boolean(true))]), "actions[0].init"),
        (continue_with(vec![("op", s("set")), ("name", s("x")), ("value", Value::Boolean(true))]), "actions[0].value"),
        (continue_with(vec![("op", s("set")), ("name", s("x")), ("value", s("big"))]), "actions[0].value"),
        (continue_with(vec![("op", s("event")), ("target", s("syn")), ("t", s("soon"))]), "actions[0].t"),
        (continue_with(vec![("op", s("watch")), ("values", s("soma.v"))]), "actions[0].values"),
        (map(vec![("op", s("hello")), ("protocol", s("2"))]), "protocol"),
        (map(vec![("op", s("hello")), ("protocol", Value::from(2)), ("id", s("x"))]), "id"),
        (map(vec![("op", s("get")), ("names", Value::from(3))]), "names"),
        (map(vec![("op", s("get")), ("names", Value::Array(vec![Value::from(3)]))]), "names[0]"),
        (map(vec![("op", s("continue")), ("actions", Value::from(3))]), "actions"),
        (map(vec![("op", s("continue")), ("client", Value::from(3))]), "client"),
        (map(vec![("op", s("continue")), ("client", s(""))]), "client"),
        (map(vec![("op", s("continue")), ("client", s(&"x".repeat(65)))]), "client"),
        (map(vec![("op", s("hello")), ("protocol", Value::from(2)), ("takeover", Value::from(1))]), "takeover"),
    ];
    for (v, field) in cases {
        let e = err(v.clone());
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some(field)), "{v}: {e:?}");
    }
}

#[test]
fn errors_name_code_and_field() {
    let e = decode_request(b"\x01\x02").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    let e = decode_request(b"not msgpack at all").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);

    let e = err(continue_with(vec![("op", s("teleport"))]));
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::UnknownOp, Some("actions[0].op")), "{e:?}");

    let e = err(continue_with(vec![("op", s("set")), ("name", s("x"))]));
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("actions[0].value")), "{e:?}");
    let e = err(map(vec![("op", s("get"))]));
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("names")), "{e:?}");
    let e = err(map(vec![("protocol", Value::from(2))]));
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("op")), "{e:?}");
    let e = err(map(vec![("op", s("hello")), ("protocol", Value::from(2)), ("client", s("peer-0a1b"))]));
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("client")), "{e:?}");
    let e = err(continue_with(vec![("op", s("set")), ("name", s("x"))]));
    assert!(e.message.contains("value"), "{e:?}");

    let e = err(map(vec![("op", s("fly"))]));
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::UnknownOp, Some("op")));

    let mut bytes = enc(&Request::Hello(Hello { id: Some(1), protocol: PROTOCOL_VERSION, ..Default::default() }));
    bytes.push(0xc0);
    assert_eq!(decode_request(&bytes).unwrap_err().code, ErrorCode::BadMessage);
}

#[test]
fn another_protocol_version_is_a_mismatch() {
    for v in [1u64, 3, 99] {
        let e = err(map(vec![("op", s("hello")), ("protocol", Value::from(v)), ("colour", s("red"))]));
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::ProtocolMismatch, Some("protocol")), "{e:?}");
        assert!(e.message.contains("speaks protocol 2") && e.message.contains(&v.to_string()), "{e:?}");
    }
}

#[test]
fn unknown_fields_are_refused() {
    let e = err(map(vec![("op", s("hello")), ("protocol", Value::from(2)), ("colour", s("red"))]));
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(e.message.contains("colour"), "{e:?}");
    let e = err(continue_with(vec![("op", s("stop")), ("now", Value::Boolean(true))]));
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("actions[0].now")), "{e:?}");
}

/// serde alone would read an integer `op` as a variant index and an array as a struct.
#[test]
fn shapes_serde_would_accept_are_refused() {
    let e = err(map(vec![("op", Value::from(0)), ("protocol", Value::from(2))]));
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("op")));

    let array_action = map(vec![
        ("op", s("continue")),
        ("actions", Value::Array(vec![Value::Array(vec![s("set"), s("ns.interval"), Value::F64(3.0)])])),
    ]);
    let e = err(array_action);
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("actions[0]")));

    let int_key = Value::Map(vec![(s("op"), s("hello")), (Value::from(1), Value::from(1))]);
    assert_eq!(err(int_key).code, ErrorCode::BadMessage);
}

/// `MAX_DEPTH` levels of nesting are read (then refused for their shape); one more is refused
/// as too deep.
#[test]
fn nesting_limit_is_exact() {
    let nested = |levels: usize| {
        // The request map is level 1, `actions` level 2, then lists inside lists.
        let mut v = Value::Nil;
        for _ in 0..levels - 2 {
            v = Value::Array(vec![v]);
        }
        map(vec![("op", s("continue")), ("actions", Value::Array(vec![v]))])
    };
    let e = err(nested(MAX_DEPTH));
    assert!(!e.message.contains("nested"), "{MAX_DEPTH} levels: {e:?}");
    let e = err(nested(MAX_DEPTH + 1));
    assert!(e.message.contains(&format!("nested deeper than {MAX_DEPTH} levels")), "{e:?}");
}

#[test]
fn peeks_read_client_and_id_of_a_bad_request() {
    let v = map(vec![("op", s("continue")), ("id", Value::from(41)), ("client", s("me")), ("actions", Value::from(1))]);
    let bytes = enc_v(v);
    assert!(decode_request(&bytes).is_err());
    assert_eq!(peek_client_and_id(&bytes), (Some("me".to_string()), Some(41)));
    assert_eq!(peek_id(&bytes), Some(41));
    assert_eq!(peek_client_and_id(b"\xff"), (None, None));
}

/// `nesting` agrees with the depth of the decoded value, for maps, arrays, strings, binaries,
/// numbers of every width and extensions, and refuses truncated input.
#[test]
fn nesting_matches_the_decoded_depth() {
    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            Value::Map(m) => 1 + m.iter().map(|(k, v)| depth(k).max(depth(v))).max().unwrap_or(0),
            _ => 0,
        }
    }
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    fn gen(next: &mut dyn FnMut() -> u64, budget: u32) -> Value {
        match next() % if budget == 0 { 8 } else { 10 } {
            0 => Value::Nil,
            1 => Value::from(next() as i64),
            2 => Value::F64(f64::from_bits(next())),
            3 => Value::F32(1.5),
            4 => Value::String("x".repeat((next() % 300) as usize).into()),
            5 => Value::Binary(vec![7; [3, 300, 70_000][(next() % 3) as usize]]),
            6 => Value::Ext(3, vec![1; [1, 2, 4, 8, 16, 3, 300][(next() % 7) as usize]]),
            7 => Value::Boolean(true),
            8 => Value::Array((0..next() % 6).map(|_| gen(next, budget - 1)).collect()),
            _ => Value::Map((0..next() % 6).map(|_| (gen(next, budget - 1), gen(next, budget - 1))).collect()),
        }
    }
    for _ in 0..2000 {
        let v = gen(&mut next, 6);
        let b = enc_v(v.clone());
        assert_eq!(nesting(&b), Some(depth(&v)), "{v}");
        if b.len() > 1 {
            assert_eq!(nesting(&b[..b.len() - 1]), None, "a truncated {v} was taken whole");
        }
    }
}
