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
    docs.push(("fw-show.schema.json", portolan_model::schema::render::<portolan_output::fw_json::FwShow>()));
    docs.push((
        "fw-query-answer.schema.json",
        portolan_model::schema::render::<portolan_output::fw_json::FwAnswer>(),
    ));
    docs.push((
        "fw-diff-change.schema.json",
        portolan_model::schema::render::<portolan_output::fw_json::FwChange>(),
    ));
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

/// `fw show`, `fw query` and `fw diff` JSON from the firewall corpus reads back into the types
/// their schemas are made from, unknown fields refused.
#[test]
fn firewall_json_is_what_its_schema_says() {
    use portolan_output::fw_json::{FwAnswer, FwChange, FwShow};
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firewall/tests/corpus");
    let run = |args: &[&str]| -> Vec<u8> {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).output().unwrap();
        assert!(matches!(o.status.code(), Some(0 | 1)), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.ends_with(".rules")
                || n.ends_with(".rules6")
                || n.ends_with(".nft.json")
                || n.ends_with(".aws.json")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for f in &files {
        let name = f.to_str().unwrap();
        let mut args = vec!["fw", "show", name, "-o", "json"];
        let ipset = f.with_extension("ipset");
        if ipset.exists() {
            args.extend(["--ipset", ipset.to_str().unwrap()]);
        }
        let show: FwShow =
            serde_json::from_slice(&run(&args)).unwrap_or_else(|e| panic!("fw show {name}: {e}"));
        assert!(!show.exposure.is_empty(), "{name}");
        let v6 = name.ends_with(".rules6");
        let (src, dst) = if v6 { ("2001:db8::7", "2001:db8::1") } else { ("198.18.0.7", "198.18.0.1") };
        let mut q = vec!["fw", "query", name, "--dport", "22", "--src", src, "--dst", dst, "-o", "json"];
        if ipset.exists() {
            q.extend(["--ipset", ipset.to_str().unwrap()]);
        }
        let answers: Vec<FwAnswer> =
            serde_json::from_slice(&run(&q)).unwrap_or_else(|e| panic!("fw query {name}: {e}"));
        assert!(!answers.is_empty(), "{name}");
    }
    // a diff with changes: the first rule set against the second
    let a = files[0].to_str().unwrap();
    let b = files[1].to_str().unwrap();
    let changes: Vec<FwChange> = serde_json::from_slice(&run(&["fw", "diff", a, b, "-o", "json"])).unwrap();
    assert!(!changes.is_empty());
}
