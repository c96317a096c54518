//! One rule line's body: a dispatcher over its options. The options every rule has (`-s`,
//! `-p`, `-i`, `-m`, ...) are handled here; each match module's options in
//! [`super::matches`], the target and its options in [`super::targets`].

use std::collections::HashMap;
use std::sync::Arc;

use super::tokenize::Token;
use super::{matches, targets, values};
use crate::error::{Error, ErrorKind, Limit, Result};
use crate::ipset::IpSets;
use crate::model::*;
use crate::sets::{IntervalSet, addr_max};

/// The line being parsed: where it is and what the rule set around it is.
pub(super) struct LineContext<'a> {
    pub file: Arc<str>,
    pub line: u32,
    pub text: &'a str,
    pub family: Family,
    pub ipsets: Option<&'a IpSets>,
}

impl LineContext<'_> {
    /// The place of a byte offset in the line (columns count characters).
    pub fn location(&self, byte: usize) -> Location {
        let col = self.text.get(..byte).map_or(byte, |p| p.chars().count()) + 1;
        Location { file: self.file.clone(), line: self.line, column: col as u32, path: None }
    }
    /// An error about a token.
    pub fn error(&self, token: &Token, kind: ErrorKind) -> Error {
        Error::at_token(self.location(token.start), kind, &token.text)
    }
    /// The largest address of the family.
    pub fn address_max(&self) -> u128 {
        addr_max(self.family.is_v6())
    }
}

/// What a rule line's matches add up to while it is parsed.
#[derive(Default)]
pub(super) struct Conditions {
    /// The conjunction of every condition that is one cube.
    pub base: Cube,
    /// Conjunction of disjunctions (multiport --ports, multi-dimension sets).
    pub alternatives: Vec<Vec<Cube>>,
    /// The rule matches no first packet of a new connection.
    pub never: bool,
    /// Conditions on state the analysis does not see.
    pub stateful: Vec<String>,
    /// `never` because of connection state (not of addresses or ports).
    pub state_only: bool,
    /// A condition assumed true of the analysed traffic (`--dst-type LOCAL`).
    pub assumed: bool,
    /// `-m comment --comment`.
    pub comment: Option<String>,
}

/// An option and what follows it in the rule: the handlers' view of the line.
pub(super) struct OptionAt<'t> {
    /// The option (`--dport`).
    pub option: &'t Token,
    /// The tokens after it, to the end of the line.
    pub rest: &'t [Token],
    /// Whether a `!` came before it.
    pub negated: bool,
}

impl<'t> OptionAt<'t> {
    /// The option's name.
    pub fn name(&self) -> &'t str {
        self.option.text.as_str()
    }
    /// The option's first value; an error at the option when the line ends.
    pub fn value(&self, line: &LineContext) -> Result<&'t Token> {
        self.rest.first().ok_or_else(|| {
            line.error(self.option, ErrorKind::MissingValue { option: self.option.text.clone() })
        })
    }
    /// How many tokens the option takes with every value up to the next option.
    pub fn with_all_values(&self) -> usize {
        1 + self.rest.iter().take_while(|t| !t.text.starts_with('-') && t.text != "!").count()
    }
}

/// A parsed rule body.
pub(super) struct ParsedRule {
    /// The disjunction of cubes it matches (empty: none).
    pub cubes: Vec<Cube>,
    /// What it does.
    pub action: Action,
    /// Its conditions (`stateful`, `comment`, ...).
    pub conditions: Conditions,
}

/// Parses the options of a rule (after `-A CHAIN`).
pub(super) fn parse_rule(
    line: &LineContext,
    tokens: &[Token],
    chains: &HashMap<String, usize>,
    table: &str,
) -> Result<ParsedRule> {
    let mut conditions = Conditions::default();
    let mut action = Action::Continue;
    // the module whose options follow (-m), else the protocol's (-p tcp --dport)
    let mut module: Option<String> = None;
    let mut protocol: Option<String> = None;
    let mut negated = false;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if token.text == "!" {
            if negated {
                return Err(line.error(token, ErrorKind::DoubleNegation));
            }
            negated = true;
            i += 1;
            continue;
        }
        let at = OptionAt { option: token, rest: &tokens[i + 1..], negated };
        // options that are the same for every module; `!` before -m, -c, -4 and -6 carries
        // over to the next option
        let mut keeps_negation = false;
        let consumed = match at.name() {
            "-s" | "--source" | "--src" => address(line, &at, &mut conditions.base.src)?,
            "-d" | "--destination" | "--dst" => address(line, &at, &mut conditions.base.dst)?,
            "-p" | "--protocol" => {
                if let Some(name) = protocol_option(line, &at, &mut conditions)? {
                    protocol = Some(name);
                }
                2
            }
            "-i" | "--in-interface" => interface(line, &at, &mut conditions.base.iif)?,
            "-o" | "--out-interface" => interface(line, &at, &mut conditions.base.oif)?,
            "-f" | "--fragment" => {
                // a non-first fragment is never the first packet of a connection
                if !negated {
                    conditions.never = true;
                }
                1
            }
            "-m" | "--match" => {
                module = Some(matches::module(line, &at, &mut conditions)?);
                keeps_negation = true;
                2
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let (a, consumed) = targets::target(line, &at, chains, table)?;
                action = a;
                module = None;
                consumed
            }
            "-c" | "--set-counters" => {
                keeps_negation = true;
                3
            }
            o @ ("-4" | "-6") => {
                if (o == "-6") != line.family.is_v6() {
                    conditions.never = true;
                }
                keeps_negation = true;
                1
            }
            o if !o.starts_with("--") => {
                return Err(line.error(token, ErrorKind::UnexpectedWord));
            }
            o => {
                let m = module.as_deref().or(protocol.as_deref()).unwrap_or_default();
                match matches::option(line, m, &at, &mut conditions)? {
                    Some(consumed) => consumed,
                    None if m.is_empty() => {
                        return Err(
                            line.error(token, ErrorKind::OptionWithoutModule { option: o.to_string() })
                        );
                    }
                    None => {
                        return Err(line.error(
                            token,
                            ErrorKind::UnknownOption { option: o.to_string(), module: m.to_string() },
                        ));
                    }
                }
            }
        };
        if !keeps_negation {
            negated = false;
        }
        i += consumed;
    }
    if negated && let Some(last) = tokens.last() {
        return Err(line.error(last, ErrorKind::DanglingNegation));
    }
    let cubes = expand(line, tokens, &conditions)?;
    Ok(ParsedRule { cubes, action, conditions })
}

/// The disjunctive form of the conditions.
fn expand(line: &LineContext, tokens: &[Token], conditions: &Conditions) -> Result<Vec<Cube>> {
    let mut cubes = vec![conditions.base.clone()];
    for alt in &conditions.alternatives {
        if cubes.len() * alt.len() > 100_000 {
            return Err(Error::TooLarge {
                location: line.location(tokens.first().map_or(0, |t| t.start)),
                limit: Limit::RuleAlternatives,
            });
        }
        cubes = cubes.iter().flat_map(|c| alt.iter().map(move |a| c.and(a))).collect();
    }
    cubes.retain(|c| !c.is_void());
    if conditions.never {
        cubes.clear();
    }
    Ok(cubes)
}

/// `-s` / `-d`: addresses into `slot`.
fn address(line: &LineContext, at: &OptionAt, slot: &mut Option<IntervalSet>) -> Result<usize> {
    let mut s = values::addresses(line, at.value(line)?)?;
    if at.negated {
        s = s.complement(line.address_max());
    }
    and_set(slot, s);
    Ok(2)
}

/// `-p`: the protocol; its name, when not negated, for the module options after it.
fn protocol_option(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<String>> {
    let v = at.value(line)?;
    let name = v.text.to_ascii_lowercase();
    if name == "all" || name == "0" {
        if at.negated {
            conditions.never = true;
        }
        return Ok(None);
    }
    let n = proto_number(&name).ok_or_else(|| line.error(v, ErrorKind::UnknownProtocol))?;
    let mut s = IntervalSet::single(u128::from(n));
    if at.negated {
        s = s.complement(255);
    }
    and_set(&mut conditions.base.proto, s);
    Ok((!at.negated).then(|| proto_name(n)))
}

/// `-i` / `-o`: an interface pattern.
fn interface(line: &LineContext, at: &OptionAt, slot: &mut Vec<IfaceMatch>) -> Result<usize> {
    let v = at.value(line)?;
    slot.push(IfaceMatch { negated: at.negated, any_of: vec![IfacePattern::parse(&v.text)] });
    Ok(2)
}
