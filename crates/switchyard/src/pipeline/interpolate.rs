//! `${VAR}` and `${VAR:-default}` in configuration text, replaced before the
//! YAML is parsed (so a variable can stand for any scalar). `$$` is a literal
//! `$`. A variable that is unset (and has no default) is an error naming the
//! variable and its line, as is a value holding a newline, which could change
//! the document's structure.

/// Replace every reference in `text`; `lookup` reads the environment.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("$$") {
                out.push('$');
                rest = after;
                continue;
            }
            let Some(body) = tail.strip_prefix("${") else {
                out.push('$');
                rest = &tail[1..];
                continue;
            };
            let Some(end) = body.find('}') else {
                errors.push(format!("line {n}: `${{` without its closing `}}`"));
                out.push_str(tail);
                rest = "";
                break;
            };
            let inner = &body[..end];
            rest = &body[end + 1..];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errors.push(format!(
                    "line {n}: `${{{inner}}}` is not a variable name (letters, digits, `_`)"
                ));
                continue;
            }
            let value = match (lookup(name), default) {
                (Some(v), None) => v,
                (Some(v), Some(_)) if !v.is_empty() => v,
                (_, Some(d)) => d.to_string(),
                (None, None) => {
                    errors.push(format!(
                        "line {n}: environment variable `{name}` is not set (write `${{{name}:-default}}` for a default)"
                    ));
                    continue;
                }
            };
            if value.contains('\n') || value.contains('\r') {
                errors.push(format!(
                    "line {n}: environment variable `{name}` holds a line break, which a configuration value cannot"
                ));
                continue;
            }
            out.push_str(&value);
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("loki.local".into()),
            "EMPTY" => Some(String::new()),
            "EVIL" => Some("a\nb: c".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_defaults_and_escapes() {
        let text = "url: http://${HOST}:${PORT:-3100}\nprice: $$5 and $x\ne: '${EMPTY:-fallback}' '${EMPTY}'\n";
        assert_eq!(
            interpolate(text, env).unwrap(),
            "url: http://loki.local:3100\nprice: $5 and $x\ne: 'fallback' ''\n"
        );
    }

    #[test]
    fn every_error_names_its_line_and_variable() {
        let text = "a: ${MISSING}\nb: ${bad-name}\nc: ${EVIL}\nd: ${OPEN";
        assert_eq!(
            interpolate(text, env).unwrap_err(),
            [
                "line 1: environment variable `MISSING` is not set (write `${MISSING:-default}` for a default)",
                "line 2: `${bad-name}` is not a variable name (letters, digits, `_`)",
                "line 3: environment variable `EVIL` holds a line break, which a configuration value cannot",
                "line 4: `${` without its closing `}`",
            ]
        );
    }
}
