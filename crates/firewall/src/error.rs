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
    /// An nftables or AWS reader's error at a place (see [`ErrorKind::Other`]).
    pub(crate) fn at(location: Location, message: impl Into<String>) -> Error {
        Error::syntax(location, ErrorKind::Other(message.into()))
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

    // ---- nftables and AWS JSON
    /// A problem found by the nftables or AWS reader, in its words. These readers' sites
    /// are not yet split into kinds of their own (issue 23 continues with them).
    #[error("{0}")]
    Other(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
