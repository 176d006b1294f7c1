//! Header blocks as stored: splitting into fields, unfolding, and the RFC 2045 tokenizer that
//! Content-Type, Content-Disposition and the address lists are read with. Values stay bytes:
//! IMAP sends header text as it was written (RFC 2047 words undecoded, 8-bit kept).

/// One field of a header block: offsets into the block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The whole field, folded lines and its final line end included.
    pub start: usize,
    pub end: usize,
    /// The name, trailing blanks trimmed.
    pub name_end: usize,
    /// The value: just after the colon, to `end`.
    pub value_start: usize,
}

/// The fields of a header block, in order. Lines without a colon are skipped, as are
/// continuation lines before the first field.
pub(crate) fn fields(block: &[u8]) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        let line_end = memchr::memchr(b'\n', &block[pos..]).map_or(block.len(), |i| pos + i + 1);
        let line = &block[pos..line_end];
        if matches!(line[0], b' ' | b'\t') {
            if let Some(last) = fields.last_mut() {
                if last.end == pos {
                    last.end = line_end;
                }
            }
        } else if let Some(colon) = memchr::memchr(b':', line) {
            let name = line[..colon].trim_ascii_end();
            if !name.is_empty() {
                fields.push(Field {
                    start: pos,
                    end: line_end,
                    name_end: pos + name.len(),
                    value_start: pos + colon + 1,
                });
            }
        }
        pos = line_end;
    }
    fields
}

impl Field {
    pub fn name<'b>(&self, block: &'b [u8]) -> &'b [u8] {
        &block[self.start..self.name_end]
    }

    pub fn is(&self, block: &[u8], name: &str) -> bool {
        self.name(block).eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value without its final line end and surrounding blanks, folds and any other CR
    /// or LF kept, NULs dropped.
    pub fn value(&self, block: &[u8]) -> Vec<u8> {
        let raw = &block[self.value_start..self.end];
        let mut out: Vec<u8> = raw.iter().copied().filter(|&b| b != 0).collect();
        let end = out
            .iter()
            .rposition(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .map_or(0, |i| i + 1);
        out.truncate(end);
        let start = out
            .iter()
            .position(|&b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(out.len());
        out.drain(..start);
        out
    }
}

/// The first value of `name` in `block`.
pub(crate) fn first_value(block: &[u8], name: &str) -> Option<Vec<u8>> {
    fields(block)
        .into_iter()
        .find(|f| f.is(block, name))
        .map(|f| f.value(block))
}

/// RFC 822 lexical tokens, as far as MIME and address headers need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// An atom (or MIME token): the RFC 2045 token characters, with dots allowed.
    Atom(Vec<u8>),
    /// A quoted string, unquoted and unescaped.
    Quoted(Vec<u8>),
    /// A comment's text, without its parentheses.
    Comment(Vec<u8>),
    /// A domain literal `[...]`, brackets kept.
    Literal(Vec<u8>),
    /// One special character.
    Special(u8),
}

/// Split a value into tokens. `mime` makes `/`, `?` and `=` specials (RFC 2045 tspecials)
/// and keeps `.` in atoms either way.
pub(crate) fn tokens(value: &[u8], mime: bool) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    let special = |b: u8| {
        matches!(
            b,
            b'(' | b')' | b'<' | b'>' | b'@' | b',' | b';' | b':' | b'\\' | b'"' | b'[' | b']'
        ) || (mime && matches!(b, b'/' | b'?' | b'='))
    };
    while i < value.len() {
        let b = value[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                let mut text = Vec::new();
                i += 1;
                while i < value.len() && value[i] != b'"' {
                    if value[i] == b'\\' && i + 1 < value.len() {
                        i += 1;
                    } else if matches!(value[i], b'\r' | b'\n') {
                        // A line end in a quoted string is a fold: unfolding removes it
                        // (RFC 5322 §3.2.2), so `"foo\r\n bar"` is `foo bar`.
                        i += 1;
                        continue;
                    }
                    text.push(value[i]);
                    i += 1;
                }
                i += 1;
                out.push(Token::Quoted(text));
            }
            b'(' => {
                let mut depth = 0usize;
                let mut text = Vec::new();
                while i < value.len() {
                    let c = value[i];
                    if c == b'\\' && i + 1 < value.len() {
                        text.push(value[i + 1]);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    match c {
                        b'\r' | b'\n' => {}
                        b'(' => {
                            depth += 1;
                            if depth > 1 {
                                text.push(c);
                            }
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            text.push(c);
                        }
                        _ => text.push(c),
                    }
                }
                out.push(Token::Comment(text));
            }
            b'[' => {
                let end = value[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .map_or(value.len(), |p| i + p + 1);
                out.push(Token::Literal(value[i..end].to_vec()));
                i = end;
            }
            _ if special(b) => {
                out.push(Token::Special(b));
                i += 1;
            }
            _ => {
                let start = i;
                while i < value.len()
                    && !special(value[i])
                    && !matches!(value[i], b' ' | b'\t' | b'\r' | b'\n')
                {
                    i += 1;
                }
                out.push(Token::Atom(value[start..i].to_vec()));
            }
        }
    }
    out
}

/// A Content-Type or Content-Disposition value: the leading value (`type/subtype`, or the
/// disposition type) and its parameters, names and values as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct MimeValue {
    pub main: Vec<u8>,
    pub sub: Option<Vec<u8>>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl MimeValue {
    pub fn parse(value: &[u8], with_subtype: bool) -> Option<MimeValue> {
        let tokens: Vec<Token> = tokens(value, true)
            .into_iter()
            .filter(|t| !matches!(t, Token::Comment(_)))
            .collect();
        let mut it = tokens.into_iter().peekable();
        let main = match it.next()? {
            Token::Atom(a) => a,
            _ => return None,
        };
        let mut result = MimeValue {
            main,
            ..MimeValue::default()
        };
        if with_subtype {
            if it.next()? != Token::Special(b'/') {
                return None;
            }
            match it.next()? {
                Token::Atom(a) => result.sub = Some(a),
                _ => return None,
            }
        }
        // Parameters: `; name = value`, skipping what does not parse up to the next `;`.
        loop {
            match it.next() {
                None => break,
                Some(Token::Special(b';')) => {}
                Some(_) => continue,
            }
            let Some(Token::Atom(name)) = it.next() else {
                continue;
            };
            if it.peek() != Some(&Token::Special(b'=')) {
                continue;
            }
            it.next();
            let value = match it.peek() {
                Some(Token::Atom(v) | Token::Quoted(v)) => v.clone(),
                _ => continue,
            };
            it.next();
            result.params.push((name, value));
        }
        result.merge_continuations();
        Some(result)
    }

    /// RFC 2231 §3 continuations (`name*0`, `name*1*`, ...) joined into one parameter, as
    /// Dovecot sends them: `name`, or `name*` when the first piece is extended (charset and
    /// language kept, percent-encoding not undone).
    fn merge_continuations(&mut self) {
        fn piece(name: &[u8]) -> Option<(&[u8], u32, bool)> {
            let star = name.iter().position(|&b| b == b'*')?;
            let rest = &name[star + 1..];
            let (digits, extended) = match rest.strip_suffix(b"*") {
                Some(d) => (d, true),
                None => (rest, false),
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
            Some((&name[..star], n, extended))
        }
        if !self.params.iter().any(|(n, _)| piece(n).is_some()) {
            return;
        }
        let mut merged: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut pieces: Vec<(Vec<u8>, u32, Vec<u8>)> = Vec::new();
        for (name, value) in std::mem::take(&mut self.params) {
            match piece(&name) {
                Some((base, n, extended)) => {
                    let base = base.to_ascii_lowercase();
                    if n == 0 {
                        let mut key = name[..base.len()].to_vec();
                        if extended {
                            key.push(b'*');
                        }
                        merged.push((key, Vec::new()));
                    }
                    pieces.push((base, n, value));
                }
                None => merged.push((name, value)),
            }
        }
        pieces.sort_by_key(|(_, n, _)| *n);
        for (key, value) in &mut merged {
            let base = key.strip_suffix(b"*").unwrap_or(key).to_ascii_lowercase();
            if value.is_empty() {
                for (b, _, v) in &pieces {
                    if *b == base {
                        value.extend_from_slice(v);
                    }
                }
            }
        }
        self.params = merged;
    }

    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_folds_and_skip_junk() {
        let block = b"Subject: a\r\n b\r\njunk line\nTo:  x@y \n\tz\n";
        let f = fields(block);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name(block), b"Subject");
        assert_eq!(f[0].value(block), b"a\r\n b");
        assert_eq!(&block[f[1].start..f[1].end], b"To:  x@y \n\tz\n");
        assert_eq!(f[1].value(block), b"x@y \n\tz");
    }

    #[test]
    fn content_type_with_params_and_comments() {
        let v = MimeValue::parse(
            b"Text/Plain (c) ; charset=\"utf-8\"; format = flowed; bad; x=",
            true,
        )
        .unwrap();
        assert_eq!(v.main, b"Text");
        assert_eq!(v.sub.as_deref(), Some(&b"Plain"[..]));
        assert_eq!(v.param("CHARSET"), Some(&b"utf-8"[..]));
        assert_eq!(v.param("format"), Some(&b"flowed"[..]));
        assert_eq!(v.params.len(), 2);
        assert!(MimeValue::parse(b"text", true).is_none());
        assert!(MimeValue::parse(b"", true).is_none());
    }

    #[test]
    fn folds_inside_quoted_strings_and_comments_are_unfolded() {
        // imaptest's fetch-bodystructure: the boundary is `foo bar`.
        let v =
            MimeValue::parse(b"multipart/mixed; boundary=\"foo\r\n bar\" (a\n\tb)", true).unwrap();
        assert_eq!(v.param("boundary"), Some(&b"foo bar"[..]));
        assert_eq!(
            tokens(b"(a\n\tb)", false),
            vec![Token::Comment(b"a\tb".to_vec())]
        );
    }
}
