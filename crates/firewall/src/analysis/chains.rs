//! Which base chains run on a hook, and the check of chain jumps (loops, nesting) every
//! command shares.

use std::collections::HashSet;

use crate::error::{Error, ErrorKind, Result};
use crate::model::*;

/// The base chains of a scope's tables that run on the given hooks, in the order a packet
/// meets them: by hook in the order given (prerouting filter chains before the input and
/// forward chains), then by priority, then in the order the file lists them.
pub(crate) fn hook_chains(
    rs: &Ruleset,
    tables: &[usize],
    f: Family,
    hooks: &[(Hook, ChainKind)],
) -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, i32, usize, usize, usize)> = Vec::new();
    let mut order = 0usize;
    for &ti in tables {
        let t = &rs.tables[ti];
        if !t.families.contains(&f) {
            continue;
        }
        for (ci, c) in t.chains.iter().enumerate() {
            let Some(h) = c.hook else { continue };
            if let Some(stage) = hooks.iter().position(|&x| x == (h, c.kind)) {
                v.push((stage, c.priority, order, ti, ci));
            }
            order += 1;
        }
    }
    v.sort_unstable();
    v.into_iter().map(|x| (x.3, x.4)).collect()
}

/// Whether a forward filter chain of the scope has rules (its exposure is shown too).
pub(crate) fn forward_used(rs: &Ruleset, tables: &[usize], f: Family) -> bool {
    tables.iter().any(|&ti| {
        let t = &rs.tables[ti];
        t.families.contains(&f)
            && t.chains
                .iter()
                .any(|c| c.hook == Some(Hook::Forward) && c.kind == ChainKind::Filter && !c.rules.is_empty())
    })
}

/// Enters chain `ci` from the chains on `stack`: a loop, or jumps nested deeper than the
/// kernel allows, is an error at the chain.
pub(crate) fn enter_chain(chain: &Chain, ci: usize, stack: &mut Vec<usize>) -> Result<()> {
    if stack.contains(&ci) {
        return Err(Error::syntax(chain.location.clone(), ErrorKind::JumpLoop { chain: chain.name.clone() }));
    }
    if stack.len() > 64 {
        return Err(Error::syntax(chain.location.clone(), ErrorKind::JumpsTooDeep));
    }
    stack.push(ci);
    Ok(())
}

/// Checks every chain's jumps as the diagrams and `fw show` do when they enter chains: a loop,
/// or jumps nested deeper than 64 chains, is the same error at the same chain. The chain walk
/// of a single query runs this first, so that every command judges a rule set's chains by
/// one rule.
pub fn check_jumps(rs: &Ruleset) -> Result<()> {
    fn visit(t: &Table, ci: usize, stack: &mut Vec<usize>, done: &mut HashSet<usize>) -> Result<()> {
        if done.contains(&ci) {
            return Ok(());
        }
        enter_chain(&t.chains[ci], ci, stack)?;
        for r in &t.chains[ci].rules {
            if let Action::Jump(c) | Action::Goto(c) = r.action
                && c < t.chains.len()
            {
                visit(t, c, stack, done)?;
            }
        }
        stack.pop();
        done.insert(ci);
        Ok(())
    }
    for t in &rs.tables {
        let mut done = HashSet::new();
        for ci in 0..t.chains.len() {
            visit(t, ci, &mut Vec::new(), &mut done)?;
        }
    }
    Ok(())
}
