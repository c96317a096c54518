//! Errors, each naming the place in the file and what is wrong there.
//!
//! A rule file that cannot be used is an [`Error::Syntax`]: its [`Location`], the token at
//! fault when there is one, and a named [`ErrorKind`] carrying the facts. Messages describe
//! the input and never name a command-line flag; the `portolan` binary adds its own advice
//! ([`Error::display_with_advice`]).

use crate::ipset::SetError;
use crate::json;
use crate::model::{Family, Location};

/// Why a rule file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not a rule set this parser understands, at a place.
    #[error("{}", self.display_with_advice(""))]
    Syntax {
        /// Where.
        location: Location,
        /// What is wrong (boxed: the facts of some kinds are long, and every `Result` of
        /// the crate carries the size of its largest error).
        kind: Box<ErrorKind>,
        /// The token at fault (iptables-save lines), shown as `(at "TOKEN")`.
        token: Option<String>,
    },
    /// A file could not be read (or is not a file, or is too large).
    #[error(transparent)]
    Input(#[from] portolan_model::input::InputError),
    /// The format could not be recognised.
    #[error(
        "{file}: not an iptables-save file, nftables JSON (nft -j list ruleset) or AWS describe-security-groups JSON"
    )]
    UnknownFormat {
        /// The file.
        file: String,
    },
    /// The analysis would exceed a bound (a rule expanding into too many alternatives).
    #[error("{location}: {limit}")]
    TooLarge {
        /// Where.
        location: Location,
        /// Which bound.
        limit: Limit,
    },
}

/// The bounds of [`Error::TooLarge`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Limit {
    /// A rule's set and multiport conditions multiply out into too many cubes.
    #[error("the rule's set and multiport conditions expand into more than 100,000 alternatives")]
    RuleAlternatives,
    /// A diff would list too many packet classes.
    #[error("the rule sets differ in too many packet classes to list")]
    DiffClasses,
}

impl Error {
    /// A syntax error at a place.
    pub fn syntax(location: Location, kind: ErrorKind) -> Error {
        Error::Syntax { location, kind: Box::new(kind), token: None }
    }
    /// A syntax error about a token at a place.
    pub fn at_token(location: Location, kind: ErrorKind, token: &str) -> Error {
        Error::Syntax { location, kind: Box::new(kind), token: Some(token.to_string()) }
    }
    /// Where the error is, when it is about a place in a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Syntax { location, .. } | Error::TooLarge { location, .. } => Some(location),
            _ => None,
        }
    }
    /// What is wrong, for a syntax error.
    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            Error::Syntax { kind, .. } => Some(kind),
            _ => None,
        }
    }
    /// The message with `advice` (a caller's words, such as the option of a program to use)
    /// after what is wrong and before the token at fault: `FILE:LINE:COL: WHAT ADVICE (at
    /// "TOKEN")`. With no advice this is the error's `Display`.
    pub fn display_with_advice(&self, advice: &str) -> String {
        match self {
            Error::Syntax { location, kind, token } => {
                let at = token.as_ref().map(|t| format!(" (at {t:?})")).unwrap_or_default();
                format!("{location}: {kind}{advice}{at}")
            }
            other => format!("{other}{advice}"),
        }
    }
}

/// `IPv4` / `IPv6`.
fn ip_version(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

/// What is wrong with a rule file at a place: the facts, displayed as they were always
/// worded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    // ---- any text file
    /// A byte that is not UTF-8.
    #[error("not UTF-8 text: byte 0x{byte:02x} (a rule set is UTF-8 text)")]
    NotUtf8 {
        /// The first bad byte.
        byte: u8,
    },
    /// A JSON document that does not parse.
    #[error("JSON syntax: {0}")]
    BadJson(json::SyntaxError),

    // ---- iptables-save structure
    /// A `*table` before the previous one's `COMMIT`.
    #[error("table *{table} starts before table *{open} has its COMMIT")]
    TableBeforeCommit {
        /// The new table.
        table: String,
        /// The table still open.
        open: String,
    },
    /// A table iptables does not have.
    #[error("unknown table {name:?} (filter, nat, mangle, raw, security)")]
    UnknownTable {
        /// Its name.
        name: String,
    },
    /// A line before the first `*table`.
    #[error("{word:?} outside a table: an iptables-save file starts tables with *filter, *nat, ...")]
    OutsideTable {
        /// The line's first word.
        word: String,
    },
    /// `:NAME` without a policy.
    #[error("chain declaration needs `:NAME POLICY [packets:bytes]` (is the line truncated?)")]
    ShortChainDeclaration,
    /// A chain policy other than ACCEPT, DROP or `-`.
    #[error("chain policy {policy:?}: expected ACCEPT, DROP or - (user chain)")]
    BadChainPolicy {
        /// The policy as written.
        policy: String,
    },
    /// A built-in chain declared with `-`.
    #[error("built-in chain {chain} needs a policy (ACCEPT or DROP)")]
    BuiltinWithoutPolicy {
        /// The chain.
        chain: String,
    },
    /// A chain declared twice.
    #[error("chain {chain} is declared twice")]
    ChainDeclaredTwice {
        /// The chain.
        chain: String,
    },
    /// A user chain with a policy.
    #[error("{chain} is not a built-in chain of table {table}: a user chain's policy is -")]
    UserChainPolicy {
        /// The chain.
        chain: String,
        /// The table.
        table: String,
    },
    /// A line that is none of `*table`, `:chain`, `-A` and `COMMIT`.
    #[error("unexpected line starting {word:?}: iptables-save lines are *table, :chain, -A rules and COMMIT")]
    UnexpectedLine {
        /// The line's first word.
        word: String,
    },
    /// A table without its `COMMIT`.
    #[error("table *{table} (started at line {started}) has no COMMIT: the file is truncated or incomplete")]
    NoCommit {
        /// The table.
        table: String,
        /// The line it starts at.
        started: u32,
    },
    /// An iptables-save file without tables.
    #[error("no tables: an iptables-save file has *filter ... COMMIT")]
    NoTables,
    /// The second rule-parsing thread panicked.
    #[error("the rule parser's second thread failed")]
    ParserThreadFailed,

    // ---- iptables-save rule lines
    /// A quote that is not closed on its line.
    #[error("unterminated quoted string (is the line truncated?)")]
    UnterminatedQuote,
    /// `-A` alone.
    #[error("-A needs a chain name (is the line truncated?)")]
    MissingChainName,
    /// `-A CHAIN` of a chain the table does not declare.
    #[error("chain {chain:?} is not declared in table {table} (no `:{chain} - [0:0]` line)")]
    UndeclaredChain {
        /// The chain.
        chain: String,
        /// The table.
        table: String,
    },
    /// An option at the end of the line.
    #[error("{option} needs a value (is the line truncated?)")]
    MissingValue {
        /// The option.
        option: String,
    },
    /// An option with fewer values than it takes.
    #[error("{option} needs {values}")]
    MissingValues {
        /// The option.
        option: String,
        /// What it takes (`MASK and COMP`).
        values: &'static str,
    },
    /// A word where an option belongs.
    #[error("unexpected word: expected an option such as -s, -p, -m or -j")]
    UnexpectedWord,
    /// `! !`.
    #[error("double negation")]
    DoubleNegation,
    /// `!` as the last word.
    #[error("`!` at the end of the rule negates nothing")]
    DanglingNegation,
    /// An address that is not numeric.
    #[error(
        "bad address {text:?}: iptables-save writes numeric addresses (a.b.c.d[/len]); host names are not resolved"
    )]
    BadAddress {
        /// The address as written.
        text: String,
    },
    /// An address of the other family.
    #[error("{} address {text:?} in an {} rule set", ip_version(*address_v6), family.as_str())]
    FamilyMismatch {
        /// The address as written.
        text: String,
        /// Whether the address is IPv6.
        address_v6: bool,
        /// The rule set's family.
        family: Family,
    },
    /// A prefix length beyond the address' bits.
    #[error("prefix length /{length} is longer than {bits} bits")]
    PrefixTooLong {
        /// The length.
        length: u32,
        /// The family's bits.
        bits: u32,
    },
    /// A netmask with holes.
    #[error("netmask {mask} is not contiguous")]
    NetmaskNotContiguous {
        /// The mask.
        mask: String,
    },
    /// A prefix length that is neither a number nor a netmask.
    #[error("bad prefix length in {text:?}")]
    BadPrefixLength {
        /// The address as written.
        text: String,
    },
    /// `-m iprange` without a `-`.
    #[error("expected FIRST-LAST")]
    NotARange,
    /// `-m iprange` with the last address first.
    #[error("address range is reversed")]
    ReversedAddressRange,
    /// A port that is neither a number nor a known service.
    #[error("bad port {text:?} (a number 0-65535 or a service name)")]
    BadPort {
        /// The port as written.
        text: String,
    },
    /// A port range with the higher port first.
    #[error("port range {text:?} is reversed")]
    ReversedPortRange {
        /// The range as written.
        text: String,
    },
    /// More than 15 multiport ports.
    #[error("multiport takes at most 15 ports")]
    TooManyPorts,
    /// `-m multiport` without one port protocol.
    #[error("multiport needs -p tcp, udp, udplite, dccp or sctp")]
    MultiportWithoutProtocol,
    /// `-p` of an unknown protocol.
    #[error("unknown protocol (a name such as tcp, udp, icmp, or a number)")]
    UnknownProtocol,
    /// `--ctproto` of an unknown protocol.
    #[error("unknown protocol")]
    UnknownConntrackProtocol,
    /// A TCP flag name iptables does not have.
    #[error("unknown TCP flag {flag:?}")]
    UnknownTcpFlag {
        /// The flag.
        flag: String,
    },
    /// A conntrack state iptables does not have.
    #[error("unknown conntrack state {state:?}")]
    UnknownConntrackState {
        /// The state.
        state: String,
    },
    /// An ICMP type name that is not known.
    #[error("unknown ICMP type")]
    UnknownIcmpType,
    /// An ICMP code that is not a number.
    #[error("bad ICMP code")]
    BadIcmpCode,
    /// A match module Portolan neither models nor knows to be stateful.
    #[error(
        "unknown match module {module:?}: Portolan models tcp, udp, sctp, icmp, icmp6, multiport, conntrack, state, iprange, set, comment, addrtype, pkttype, and treats {stateful} as state it cannot see; rewrite the rule or remove it to analyse the rest"
    )]
    UnknownModule {
        /// The module.
        module: String,
        /// The first stateful modules, for the message.
        stateful: String,
    },
    /// An option the module in force does not have.
    #[error("option {option} is not one Portolan knows for match {module:?}")]
    UnknownOption {
        /// The option.
        option: String,
        /// The module (or protocol) in force.
        module: String,
    },
    /// A module option before any `-m` or `-p`.
    #[error("option {option} needs a match module (-m) or protocol (-p) before it")]
    OptionWithoutModule {
        /// The option.
        option: String,
    },
    /// `--match-set` direction flags other than src and dst.
    #[error("set flags are src or dst, comma-separated")]
    BadSetFlags,
    /// A set whose family is not the rule set's.
    #[error("the set's family differs from the rule set's")]
    SetFamilyMismatch,
    /// What a `--match-set` names cannot be used (not defined, ...).
    #[error(transparent)]
    Set(#[from] SetError),
    /// `! --match-set` of a set of more than one dimension.
    #[error("a negated multi-dimension set match is not supported")]
    NegatedMultiDimensionSet,
    /// `! -j`.
    #[error("a target cannot be negated")]
    NegatedTarget,
    /// `-j` of neither a target nor a chain.
    #[error("target {target:?} is neither a known target nor a chain declared in table {table}")]
    UnknownTarget {
        /// The target.
        target: String,
        /// The table.
        table: String,
    },
    /// A NAT target outside the nat table.
    #[error("{target} is only valid in the nat table")]
    NatOutsideNatTable {
        /// The target.
        target: String,
    },
    /// DNAT without its destination.
    #[error("DNAT needs --to-destination")]
    DnatWithoutDestination,
    /// `--to-destination [addr` without `]`.
    #[error("unclosed [")]
    UnclosedBracket,
    /// A `--to-destination` address that does not parse.
    #[error("bad --to-destination address")]
    BadNatAddress,
    /// A `--to-destination` port that does not parse.
    #[error("bad --to-destination port")]
    BadNatPort,

    // ---- chains, whatever the format
    /// A chain that jumps back into itself.
    #[error("chain {chain} jumps back into itself (a loop the kernel refuses)")]
    JumpLoop {
        /// The chain.
        chain: String,
    },
    /// Jumps nested deeper than the kernel allows.
    #[error("jumps nest deeper than 64 chains")]
    JumpsTooDeep,

    // ---- ipset save
    /// A set type that is not modelled.
    #[error(
        "set type {kind:?} is not supported (supported: hash/bitmap of ip, net, port, iface, and list:set)"
    )]
    UnsupportedSetType {
        /// The type.
        kind: String,
    },
    /// `add` to a set no `create` declares.
    #[error("`add` to set {set:?}, which no earlier `create` line declares")]
    UndeclaredSet {
        /// The set.
        set: String,
    },
    /// A member with the wrong number of parts.
    #[error("member {member:?} of {kind} set {set:?} needs {parts} comma-separated parts")]
    MemberParts {
        /// The member.
        member: String,
        /// The set's type.
        kind: String,
        /// The set.
        set: String,
        /// How many parts its type has.
        parts: usize,
    },
    /// A member part that does not parse.
    #[error("bad member {part:?} of set {set:?} ({kind})")]
    BadMember {
        /// The part.
        part: String,
        /// The set.
        set: String,
        /// The set's type.
        kind: String,
    },
    /// A line that is neither `create` nor `add`.
    #[error("expected `create NAME TYPE ...` or `add NAME MEMBER` (ipset save output), found {word:?}")]
    UnexpectedIpsetLine {
        /// The line's first word.
        word: String,
    },

    // ---- nftables and AWS JSON: the document's shape
    /// A JSON value of another kind than the reader expects at this place.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the reader expects.
        expected: Expected,
        /// What is there: a short rendering of the value, or its JSON kind (`an array`).
        found: String,
    },
    /// An AWS field (or a security group) of the wrong JSON kind.
    #[error("{subject} must be {expected}{}", found.map(|f| format!(", found {f}")).unwrap_or_default())]
    WrongType {
        /// The key (`IpPermissions`, `FromPort`), or `a security group`.
        subject: String,
        /// The JSON kind it must be (`an array`, `an integer`, `a string`).
        expected: &'static str,
        /// The JSON kind it is, when the message names it.
        found: Option<&'static str>,
    },
    /// A member the object needs is missing (or of the wrong kind).
    #[error(transparent)]
    Missing(#[from] Missing),
    /// An nftables feature Portolan does not model.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// A top-level nftables object that is not a table, chain, rule, set, map, ...
    #[error("unknown object {name:?} (expected table, chain, rule, set, map, ...)")]
    UnknownObject {
        /// The object's key.
        name: String,
    },
    /// Named sets (or interface-name sets) that refer to each other too deeply.
    #[error("sets nest too deeply")]
    SetsTooDeep,

    // ---- nftables tables and chains
    /// A chain priority that is neither a number nor a standard name.
    #[error("chain priority must be a number or a standard name")]
    BadChainPriority,
    /// A base chain's policy other than accept or drop.
    #[error("chain policy {policy:?}: expected accept or drop")]
    BadHookPolicy {
        /// The policy as written.
        policy: String,
    },
    /// A chain of a table no earlier object declares.
    #[error("chain {chain} of table {table}, which is not declared before it")]
    ChainOfUndeclaredTable {
        /// The chain.
        chain: String,
        /// The table (`FAMILY NAME`).
        table: String,
    },
    /// A rule in a chain its table does not declare.
    #[error("rule in chain {chain}, which table {table} does not declare")]
    RuleInUndeclaredChain {
        /// The chain.
        chain: String,
        /// The table (`FAMILY NAME`).
        table: String,
    },
    /// A jump or goto to a chain the table does not have.
    #[error("{statement} to chain {chain:?}, which table {table} does not have")]
    UnknownJumpTarget {
        /// `jump` or `goto`.
        statement: &'static str,
        /// The chain.
        chain: String,
        /// The table (`FAMILY NAME`).
        table: String,
    },
    /// `@NAME` of a set the table does not define.
    #[error("set @{name} is not defined{}", table.as_ref().map(|t| format!(" in table {t}")).unwrap_or_default())]
    UndefinedSet {
        /// The set.
        name: String,
        /// The table (`FAMILY NAME`), when the message names it.
        table: Option<String>,
    },
    /// A verdict map's `@NAME` of a map the table does not define.
    #[error("map @{name} is not defined")]
    UndefinedMap {
        /// The map.
        name: String,
    },
    /// An nftables document without tables.
    #[error("no tables: the rule set is empty")]
    EmptyRuleset,

    // ---- nftables rules
    /// A statement after the rule's verdict.
    #[error("statement after the rule's verdict")]
    StatementAfterVerdict,
    /// A NAT statement in a base chain that is not `type nat`.
    #[error("NAT statement in a chain that is not type nat")]
    NatOutsideNatChain,
    /// A value that does not read as what the field holds (also a `fw query --batch` field).
    #[error("bad {what} {text:?}")]
    BadValue {
        /// What the value is.
        what: ValueKind,
        /// The value as written.
        text: String,
    },
    /// A `prefix` length beyond the address' bits.
    #[error("bad prefix length {length}")]
    PrefixLengthOutOfRange {
        /// The length.
        length: i64,
    },
    /// An address (nftables) or prefix (AWS) of the other family.
    #[error("{text} is not an {} {}", family.as_str(), if *prefix { "prefix" } else { "address" })]
    OtherFamily {
        /// The address or prefix.
        text: String,
        /// The family it must be of.
        family: Family,
        /// Whether the message calls it a prefix (AWS) rather than an address.
        prefix: bool,
    },
    /// A `range` that is not `[first, last]`.
    #[error("range needs [first, last]")]
    BadRange,
    /// A set element used with a concatenation that is not one.
    #[error("expected a concatenated element")]
    NotConcatenated,
    /// A concatenated element with another number of parts than the concatenation.
    #[error("element has a different number of parts than the concatenation")]
    ConcatenationParts,
    /// A verdict map's data that is neither an anonymous set nor `@map`.
    #[error("vmap data must be a set of [key, verdict] pairs or @map")]
    BadVmapData,
    /// A verdict map element that is not a pair.
    #[error("vmap element must be [key, verdict]")]
    BadVmapElement,
    /// A verdict map element whose value is not a verdict.
    #[error("vmap value must be a verdict")]
    VmapValueNotVerdict,

    // ---- AWS security groups
    /// An `IpProtocol` that is neither a known name, a number nor `-1`.
    #[error("unknown protocol {name:?}")]
    UnknownIpProtocol {
        /// The protocol as written.
        name: String,
    },
    /// `FromPort`..`ToPort` outside 0-65535 or reversed.
    #[error("bad port range {from}-{to}")]
    BadPortRange {
        /// `FromPort`.
        from: i64,
        /// `ToPort`.
        to: i64,
    },
    /// A CIDR without its `/LEN`.
    #[error("{field} {cidr:?} needs a prefix length (a.b.c.d/n)")]
    CidrWithoutLength {
        /// `CidrIp` or `CidrIpv6`.
        field: &'static str,
        /// The CIDR as written.
        cidr: String,
    },
    /// A CIDR whose address does not parse.
    #[error("bad address in {field} {cidr:?}")]
    BadCidrAddress {
        /// `CidrIp` or `CidrIpv6`.
        field: &'static str,
        /// The CIDR as written.
        cidr: String,
    },

    // ---- fw query --batch
    /// A batch line with fewer than four fields.
    #[error("expected `SRC DST PROTO DPORT [IIF]`")]
    ShortBatchLine,
}

/// What an nftables or AWS reader expects where it finds something else
/// ([`ErrorKind::Expected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Expected {
    /// The whole nftables document.
    #[error("an object with an \"nftables\" array (nft -j list ruleset)")]
    NftablesDocument,
    /// The whole AWS document.
    #[error("an object with a \"SecurityGroups\" array (aws ec2 describe-security-groups)")]
    SecurityGroupsDocument,
    /// An element of the `nftables` array.
    #[error("an object with one key (table, chain, rule, set, ...)")]
    NftablesObject,
    /// A statement of a rule's `expr`.
    #[error("a statement object")]
    StatementObject,
    /// A verdict statement (a verdict map's value).
    #[error("a statement")]
    Statement,
    /// The left side of a match.
    #[error("a match expression")]
    MatchExpression,
    /// A value on the right of a match.
    #[error("a value")]
    Value,
    /// An interface name on the right of an `iifname`/`oifname` match.
    #[error("an interface name")]
    InterfaceName,
}

/// What a value is, for [`ErrorKind::BadValue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueKind {
    /// An address (or an address with `/LEN`).
    #[error("address")]
    Address,
    /// The `/LEN` of an address.
    #[error("prefix")]
    Prefix,
    /// An IP protocol.
    #[error("protocol")]
    Protocol,
    /// A port number or service name.
    #[error("port")]
    Port,
    /// An ICMP type.
    #[error("ICMP type")]
    IcmpType,
    /// An ICMP code.
    #[error("ICMP code")]
    IcmpCode,
    /// `meta nfproto`'s value.
    #[error("nfproto")]
    Nfproto,
    /// A conntrack state.
    #[error("ct state")]
    CtState,
    /// A TCP flag.
    #[error("TCP flag")]
    TcpFlag,
    /// A batch line's source address.
    #[error("source")]
    Source,
    /// A batch line's destination address.
    #[error("destination")]
    Destination,
}

/// A member an nftables or AWS object needs that is missing ([`ErrorKind::Missing`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Missing {
    /// A string member of a top-level nftables object (or rule).
    #[error("{object} needs a string \"{key}\"")]
    String {
        /// The object (`table`, `chain`, `set`, `map`, `rule`).
        object: String,
        /// The member.
        key: &'static str,
    },
    /// A rule's `expr` array.
    #[error("rule needs an \"expr\" array")]
    RuleExpressions,
    /// A match's `left` or `right`.
    #[error("match without {side}")]
    MatchSide {
        /// `left` or `right`.
        side: &'static str,
    },
    /// An `elem`'s `val`.
    #[error("elem without val")]
    ElementValue,
    /// A `prefix`'s `addr` or `len`.
    #[error("prefix needs {member}")]
    PrefixMember {
        /// `addr` or `len`.
        member: &'static str,
    },
    /// The operands of `&`, `|` or `^`.
    #[error("binary operation needs operands")]
    Operands,
    /// A verdict map's key.
    #[error("vmap needs a key")]
    VmapKey,
    /// A verdict map's data.
    #[error("vmap needs data")]
    VmapData,
    /// A jump's or goto's target chain.
    #[error("{statement} needs a target")]
    Target {
        /// `jump` or `goto`.
        statement: &'static str,
    },
    /// A security group's `GroupId`.
    #[error("security group without a \"GroupId\" string")]
    GroupId,
    /// A permission's `IpProtocol`.
    #[error("permission without \"IpProtocol\"")]
    IpProtocol,
    /// A port protocol permission's `FromPort` or `ToPort`.
    #[error("tcp/udp permission needs FromPort and ToPort")]
    Ports,
    /// An `IpRanges` / `Ipv6Ranges` entry's CIDR.
    #[error("{list} entry without a \"{field}\" string")]
    Cidr {
        /// `IpRanges` or `Ipv6Ranges`.
        list: &'static str,
        /// `CidrIp` or `CidrIpv6`.
        field: &'static str,
    },
}

/// An nftables feature Portolan does not model ([`ErrorKind::Unsupported`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// A payload expression by base, offset and length.
    #[error("raw payload expressions (base/offset/len) are not supported")]
    RawPayload,
    /// A payload field that is not modelled.
    #[error("payload field {protocol} {field} is not supported")]
    PayloadField {
        /// The header.
        protocol: String,
        /// The field.
        field: String,
    },
    /// A `meta` key that is not modelled.
    #[error("meta key {key:?} is not supported")]
    MetaKey {
        /// The key.
        key: String,
    },
    /// An expression that is not modelled.
    #[error("expression {name:?} is not supported")]
    Expression {
        /// The expression's key.
        name: String,
    },
    /// A concatenation inside a concatenation (or an operation).
    #[error("internal: concat handled by the caller")]
    NestedConcatenation,
    /// A concatenation part whose values are not numbers (`ct status`).
    #[error("internal: not a numeric field")]
    NonNumericField,
    /// A match operator other than `==`, `!=`, `in`, `<`, `>`, `<=` and `>=`.
    #[error("match operator {op:?} is not supported")]
    MatchOperator {
        /// The operator.
        op: String,
    },
    /// `!=` of a concatenation.
    #[error("a negated concatenation match is not supported")]
    NegatedConcatenation,
    /// A statement that is neither modelled nor neutral.
    #[error("statement {name:?} is not supported")]
    Statement {
        /// The statement's key.
        name: String,
    },
    /// `dnat to` an address computed by a map.
    #[error("dnat to a computed address (map) is not supported; use a literal address")]
    ComputedDnatAddress,
    /// `dnat to` a port that is not a literal.
    #[error("dnat to a computed port is not supported; use a literal port")]
    ComputedDnatPort,
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
