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
