//! The logfmt that Tempo's legacy search takes its `tags` in
//! (`service.name=shop http.url="/a b"`), read as `go-logfmt` reads it:
//! space-separated `key=value` pairs, values bare or double-quoted with
//! JSON-style escapes, a key alone meaning an empty value, newlines
//! separating records (all records' pairs count).

/// A logfmt syntax error: what and where (1-based byte position in its
/// line, as `go-logfmt` reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub msg: &'static str,
    pub pos: usize,
}

/// Decodes every `key=value` pair, in order.
pub(crate) fn decode(text: &str) -> Result<Vec<(String, String)>, SyntaxError> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        decode_line(line, &mut out)?;
    }
    Ok(out)
}

fn is_space(b: u8) -> bool {
    b <= b' '
}

fn decode_line(line: &str, out: &mut Vec<(String, String)>) -> Result<(), SyntaxError> {
    let b = line.as_bytes();
    let mut i = 0;
    let err = |msg, at: usize| SyntaxError { msg, pos: at + 1 };
    while i < b.len() {
        if is_space(b[i]) {
            i += 1;
            continue;
        }
        let key_start = i;
        while i < b.len() && !is_space(b[i]) && b[i] != b'=' {
            if b[i] == b'"' {
                return Err(err("unexpected '\"'", i));
            }
            i += 1;
        }
        if i == key_start {
            return Err(err("unexpected '='", i));
        }
        let key = &line[key_start..i];
        if i >= b.len() || b[i] != b'=' {
            out.push((key.to_owned(), String::new()));
            continue;
        }
        i += 1; // '='
        if i < b.len() && b[i] == b'"' {
            let open = i;
            i += 1;
            let mut escaped = false;
            loop {
                let Some(&c) = b.get(i) else { return Err(err("unterminated quoted value", i)) };
                i += 1;
                match c {
                    b'\\' if !escaped => escaped = true,
                    b'"' if !escaped => break,
                    _ => escaped = false,
                }
            }
            let value: String =
                serde_json::from_str(&line[open..i]).map_err(|_| err("invalid quoted value", open))?;
            out.push((key.to_owned(), value));
        } else {
            let value_start = i;
            while i < b.len() && !is_space(b[i]) {
                match b[i] {
                    b'=' => return Err(err("unexpected '='", i)),
                    b'"' => return Err(err("unexpected '\"'", i)),
                    _ => i += 1,
                }
            }
            out.push((key.to_owned(), line[value_start..i].to_owned()));
        }
    }
    Ok(())
}
