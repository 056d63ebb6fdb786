//! Checks for trees built by hand ([`Selector::from_node`](super::Selector::from_node)):
//! labels of 1 to 512 label bytes and no value holding both `"` and `'`, so the canonical string of an accepted tree always re-parses.

use super::ast::{Node, Text};
use super::error::BuildError;
use super::parser::MAX_DEPTH;
use super::tokenizer::{MAX_LABEL_LEN, is_label_byte};

fn check_label(label: &str) -> Result<(), BuildError> {
    if label.len() > MAX_LABEL_LEN {
        return Err(BuildError::LabelTooLong { len: label.len() });
    }
    if label.is_empty() || !label.bytes().all(is_label_byte) {
        return Err(BuildError::InvalidLabel {
            label: label.to_owned(),
        });
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), BuildError> {
    if value.contains('"') && value.contains('\'') {
        return Err(BuildError::ValueHasBothQuotes {
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn check_operands(operator: &'static str, operands: &[Node]) -> Result<(), BuildError> {
    if operands.len() < 2 {
        return Err(BuildError::TooFewOperands {
            operator,
            count: operands.len(),
        });
    }
    Ok(())
}

/// Sorts and de-duplicates a set, checking its members.
fn normalise_set(values: &mut Box<[Text]>) -> Result<(), BuildError> {
    for v in values.iter() {
        check_value(v)?;
    }
    if !values.is_sorted() || values.windows(2).any(|w| w[0] == w[1]) {
        let mut v = std::mem::take(values).into_vec();
        v.sort_unstable();
        v.dedup();
        *values = v.into_boxed_slice();
    }
    Ok(())
}

/// Checks an `And` / `Or` node and queues its operands.
fn push_list<'n>(
    stack: &mut Vec<(&'n mut Node, usize)>,
    operator: &'static str,
    operands: &'n mut [Node],
    depth: usize,
) -> Result<(), BuildError> {
    check_operands(operator, operands)?;
    stack.extend(operands.iter_mut().map(|n| (n, depth + 1)));
    Ok(())
}

/// Checks `root` and normalises its sets; iterative, so any depth is safe to check.
pub(crate) fn check_node(mut root: Node) -> Result<Node, BuildError> {
    // (node, its depth in nodes; the root is at depth 1)
    let mut stack: Vec<(&mut Node, usize)> = vec![(&mut root, 1)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(BuildError::TooDeep { limit: MAX_DEPTH });
        }
        match node {
            Node::Eq { label, value }
            | Node::Ne { label, value }
            | Node::Contains { label, value }
            | Node::StartsWith { label, value }
            | Node::EndsWith { label, value } => {
                check_label(label)?;
                check_value(value)?;
            }
            Node::In { label, values } | Node::NotIn { label, values } => {
                check_label(label)?;
                normalise_set(values)?;
            }
            Node::Has { label } => check_label(label)?,
            Node::All | Node::Global => {}
            Node::Not(operand) => stack.push((&mut **operand, depth + 1)),
            Node::And(operands) => push_list(&mut stack, "And", operands, depth)?,
            Node::Or(operands) => push_list(&mut stack, "Or", operands, depth)?,
        }
    }
    Ok(root)
}
