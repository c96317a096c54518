//! The JSON Schemas in docs/schema/ must match the types (of every crate's documents). `PORTOLAN_BLESS=1` rewrites them.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::path::PathBuf;

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema");
    let bless = std::env::var_os("PORTOLAN_BLESS").is_some();
    let mut stale = Vec::new();
    let mut docs = portolan_model::schema::all();
    docs.push(("run-diff.schema.json", portolan_model::schema::render::<portolan_diff::RunDiff>()));
    docs.push(("local-diff.schema.json", portolan_model::schema::render::<portolan_diff::LocalDiff>()));
    // the elements of `port -o json`, `identify -o json` and `check -o json` (each an array)
    docs.push(("port-lookup.schema.json", portolan_model::schema::render::<portolan_kb::Lookup>()));
    docs.push(("identify-result.schema.json", portolan_model::schema::render::<portolan_identify::Row>()));
    docs.push((
        "check-answer.schema.json",
        portolan_model::schema::render::<portolan_scan::probe::CheckAnswer>(),
    ));
    for (name, text) in docs {
        let path = dir.join(name);
        // Every schema is a real JSON Schema document for an object.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "object", "{name}");
        assert!(v["$schema"].as_str().unwrap().contains("2020-12"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/schema is out of date for {stale:?}: run PORTOLAN_BLESS=1 cargo test -p portolan --test schema_docs"
    );
}

/// The documents the array outputs write hold only the fields their schemas describe (a check
/// of the real output, top level, against `properties`).
#[test]
fn array_outputs_use_the_schema_fields() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    for (schema, args) in [
        ("port-lookup.schema.json", vec!["port", "22", "3389", "-o", "json"]),
        ("check-answer.schema.json", vec!["check", open.as_str(), "127.0.0.1:1", "-o", "json"]),
        (
            "identify-result.schema.json",
            vec!["identify", "--version-timeout", "1s", open.as_str(), "-o", "json"],
        ),
    ] {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(schema)).unwrap()).unwrap();
        let props = s["properties"].as_object().unwrap_or_else(|| panic!("{schema}: no properties"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portolan")).args(&args).output().unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let items = v.as_array().unwrap_or_else(|| panic!("{args:?}: not an array"));
        assert!(!items.is_empty(), "{args:?}");
        for item in items {
            for key in item.as_object().unwrap().keys() {
                assert!(props.contains_key(key), "{schema}: {key:?} of {args:?} is not in the schema");
            }
            for req in s["required"].as_array().into_iter().flatten() {
                assert!(item.get(req.as_str().unwrap()).is_some(), "{schema}: {req} missing in {item}");
            }
        }
    }
    drop(listener);
}
