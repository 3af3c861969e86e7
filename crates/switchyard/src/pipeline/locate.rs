//! The line of a key path (`sinks.out.buffer.when_full`) in block-style YAML.
//!
//! The YAML library turns the document into values without positions, so
//! errors found while checking values are placed by looking the path up in the
//! text: each key is searched for inside the block of its parent, by
//! indentation. Flow-style mappings (`{a: 1}`) are found down to the key that
//! holds them. Good enough to point at the right line; never used to read
//! values.

/// 1-based line of the deepest key of `path` that could be found, if any.
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for key in path {
        let mut hit = None;
        let mut child_indent = None;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if parent_indent.is_some_and(|p| indent <= p) {
                break;
            }
            // Keys of this block sit at its first indentation.
            let ci = *child_indent.get_or_insert(indent);
            if indent != ci {
                continue;
            }
            let k = trimmed.trim_start_matches("- ");
            let name = k
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['"', '\'']);
            if name == *key && k.contains(':') {
                hit = Some((i, indent));
                break;
            }
        }
        let Some((i, indent)) = hit else { break };
        found = Some(i + 1);
        from = i + 1;
        parent_indent = Some(indent);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
sources:
  app:
    type: file
sinks:
  out:
    type: file
    # comment
    buffer:
      when_full: sometimes
  other:
    buffer: {when_full: x}
";

    #[test]
    fn finds_nested_keys_by_block() {
        assert_eq!(
            line_of(DOC, &["sinks", "out", "buffer", "when_full"]),
            Some(9)
        );
        assert_eq!(line_of(DOC, &["sources", "app", "type"]), Some(3));
        assert_eq!(line_of(DOC, &["sinks", "out", "type"]), Some(6));
        // Not in this block: stops at the deepest key found.
        assert_eq!(line_of(DOC, &["sinks", "other", "type"]), Some(10));
        assert_eq!(
            line_of(DOC, &["sinks", "other", "buffer", "when_full"]),
            Some(11)
        );
        assert_eq!(line_of(DOC, &["transforms"]), None);
    }
}
