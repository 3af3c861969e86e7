//! JSON strings and integers written exactly as `serde_json` writes them.
//! Strings go through the one escaper, `switchyard_core::json_string`;
//! integers are written here. The tests compare with `serde_json`.

/// Append `s` as a JSON string: the one escaper, in core.
pub(crate) use switchyard_core::json_string::push_str;

/// Append a signed integer in decimal.
pub(crate) fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Append an unsigned integer in decimal.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_as_serde_writes_them() {
        for n in [0, 1, -1, 9, 10, 1234, i64::MAX, i64::MIN] {
            let mut out = String::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut out = String::new();
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn any_integer(n in any::<i64>(), u in any::<u64>()) {
            let mut out = String::new();
            push_i64(&mut out, n);
            out.push(' ');
            push_u64(&mut out, u);
            prop_assert_eq!(out, format!("{n} {u}"));
        }
    }
}
