//! The documents `fw show`, `fw query` and `fw diff` write with `-o json`, as types: their JSON
//! Schemas in `docs/schema/` are made from these, and the tests read real output back into them
//! (unknown fields refused), so the schemas cannot drift from what is written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `fw show -o json`: the exposure of a rule set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwShow {
    /// One entry per family, view (to this machine, forwarded) and scope (an interface or
    /// security group).
    pub exposure: Vec<FwExposure>,
    /// The rule file.
    pub file: String,
    /// Its format: `iptables`, `nft`, `aws`.
    pub format: String,
    /// What the reader noted (features it reads partly, assumptions).
    pub notes: Vec<String>,
    /// How many rules.
    pub rules: u64,
}

/// The exposure of one family, view and scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwExposure {
    /// Per source class, what decides for every protocol and port alike (shown once).
    pub everywhere: BTreeMap<String, Vec<FwPart>>,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// Protocol and port ranges, each with a verdict per source class.
    pub rows: Vec<FwRow>,
    /// The interface or group this is about (empty: any).
    pub scope: String,
    /// `input` (to this machine) or `forward` (through it).
    pub view: String,
}

/// A protocol and port range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwRow {
    /// Per source class (`internet`, `private`, the special classes and `--from` ones).
    pub classes: BTreeMap<String, FwClass>,
    /// `22`, `23-79`; null for protocols without ports.
    pub ports: Option<String>,
    /// `tcp`, `udp`, `icmp`, `proto-N`.
    pub protocol: String,
    /// The service name of a single port (empty otherwise).
    pub service: String,
}

/// What a source class meets on a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwClass {
    /// The parts of the class that meet different rules.
    pub parts: Vec<FwPart>,
    /// `accept`, `drop`, `reject`, or `partial` (parts differ).
    pub verdict: String,
}

/// Sources that meet one deciding rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwPart {
    /// The DNAT rule that translated the packet first, if one did.
    pub dnat: Option<String>,
    /// `file:line:column` of the deciding rule (`table/chain/handle` for nft JSON).
    pub location: Option<String>,
    /// The deciding rule, described.
    pub rule: Option<String>,
    /// The sources (CIDRs, `any`, or the class name).
    pub sources: Vec<String>,
    /// `accept`, `drop`, `reject`.
    pub verdict: String,
}

/// One element of `fw query -o json` (an array: one per scope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwAnswer {
    /// The scope (interface or group; empty: any).
    pub scope: String,
    /// `accept`, `drop`, `reject`.
    pub verdict: String,
    /// The deciding rule (null: no chain on the hook, accepted).
    pub rule: Option<String>,
    /// Where it is.
    pub location: Option<String>,
    /// The rule that translated the packet, if one did.
    pub translated_by: Option<String>,
    /// Every rule the packet met, in order.
    pub path: Vec<FwStep>,
}

/// A rule on a packet's path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwStep {
    /// The rule, described.
    pub rule: String,
    /// What it did to the packet.
    pub what: String,
}

/// One element of `fw diff -o json` (an array): packets whose verdict changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwChange {
    /// The scope.
    pub scope: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// `tcp`, `udp`, `icmp`, `proto-N`.
    pub protocol: String,
    /// The port range.
    pub ports: String,
    /// Every source CIDR (never shortened).
    pub sources: Vec<String>,
    /// The input interfaces (empty: any).
    pub in_interfaces: Vec<String>,
    /// The verdict before.
    pub old: FwTerm,
    /// The verdict after.
    pub new: FwTerm,
}

/// A verdict and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FwTerm {
    /// `accept`, `drop`, `reject`.
    pub verdict: String,
    /// The rule, described.
    pub rule: Option<String>,
    /// Where it is.
    pub location: Option<String>,
    /// The DNAT rule before it, if one.
    pub dnat: Option<String>,
}
