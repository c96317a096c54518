//! JSON Schemas of Portolan's machine-readable documents, generated from the types.

use schemars::{JsonSchema, generate::SchemaSettings};

use crate::{AuditReport, Finding, LocalInventory, ScanRun, Snapshot};

/// `(file name, pretty JSON schema)` for every top-level document Portolan writes.
///
/// The files live in `docs/schema/`; `cargo test -p portolan --test schema_docs` fails when
/// they are out of date (it adds the documents of the judge crates), and `PORTOLAN_BLESS=1`
/// rewrites them.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("scan-run.schema.json", render::<ScanRun>()),
        ("finding.schema.json", render::<Finding>()),
        ("snapshot.schema.json", render::<Snapshot>()),
        ("local-inventory.schema.json", render::<LocalInventory>()),
        ("audit-report.schema.json", render::<AuditReport>()),
        ("watch-report.schema.json", render::<crate::traffic::WatchReport>()),
        ("detection.schema.json", render::<crate::Detection>()),
        ("run-info.schema.json", render::<crate::RunInfo>()),
    ]
}

/// The pretty-printed JSON Schema (draft 2020-12) of one type.
pub fn render<T: JsonSchema>() -> String {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
