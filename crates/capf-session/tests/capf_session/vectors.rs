//! Reading `spec/capf-test-vectors.json`.

use std::sync::OnceLock;

use serde_json::Value;

/// Every vector in the shared file.
pub(crate) fn all() -> &'static [Value] {
    static ALL: OnceLock<Vec<Value>> = OnceLock::new();
    ALL.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/capf-test-vectors.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    })
}

/// The bytes of a vector.
pub(crate) fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

/// The bytes of the vector called `name`.
pub(crate) fn named(name: &str) -> Vec<u8> {
    bytes(
        all()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no vector {name:?}")),
    )
}

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    ServerToPhone,
    PhoneToServer,
}

/// One recorded session, its messages in order.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub(crate) label: String,
    pub(crate) session_id: u32,
    pub(crate) messages: Vec<(Direction, Vec<u8>)>,
}

/// The recorded sessions, in file order.
pub(crate) fn recorded() -> Vec<Recorded> {
    let mut sessions: Vec<Recorded> = Vec::new();
    for v in all() {
        let Some(label) = v["session"].as_str() else {
            continue;
        };
        let direction = match v["direction"].as_str().unwrap() {
            "server->phone" => Direction::ServerToPhone,
            "phone->server" => Direction::PhoneToServer,
            other => panic!("direction {other}"),
        };
        let session_id =
            u32::try_from(v["decoded"]["header"]["session_id"].as_u64().unwrap()).unwrap();
        if sessions.last().is_none_or(|s| s.label != label) {
            sessions.push(Recorded {
                label: label.to_owned(),
                session_id,
                messages: Vec::new(),
            });
        }
        let s = sessions.last_mut().unwrap();
        assert_eq!(s.session_id, session_id, "{label}: one id per session");
        s.messages.push((direction, bytes(v)));
    }
    sessions
}
