//! The text side's front: the reference's prompt cleaning (diffusers
//! pipelines/wan/pipeline_wan.py `prompt_clean`) and the T5/UMT5 tokenizer from
//! `tokenizer/tokenizer.json`, padded and truncated as transformers does with
//! `padding="max_length", truncation=True, add_special_tokens=True`.

use std::path::{Path, PathBuf};

use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::{Error, Result};

pub struct WanTokenizer {
    path: PathBuf,
    inner: Tokenizer,
    pad_id: u32,
}

impl WanTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Tokenizer { path: path.to_path_buf(), message: "file not found".into() });
        }
        let inner = Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer { path: path.to_path_buf(), message: e.to_string() })?;
        let pad_id = inner.token_to_id("<pad>").unwrap_or(0);
        Ok(Self { path: path.to_path_buf(), inner, pad_id })
    }

    /// Token ids and attention mask of one prompt, both exactly `max_length` long: the
    /// cleaned prompt's tokens, truncated so that the closing `</s>` always fits, then
    /// padded with `<pad>`.
    pub fn encode(&self, prompt: &str, max_length: usize) -> Result<(Vec<u32>, Vec<u32>)> {
        let mut tok = self.inner.clone();
        let err = |e: tokenizers::Error| Error::Tokenizer { path: self.path.clone(), message: e.to_string() };
        tok.with_truncation(Some(TruncationParams { max_length, ..Default::default() })).map_err(err)?;
        tok.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_length),
            direction: PaddingDirection::Right,
            pad_id: self.pad_id,
            pad_token: "<pad>".into(),
            ..Default::default()
        }));
        let enc = tok.encode(prompt_clean(prompt), true).map_err(err)?;
        Ok((enc.get_ids().to_vec(), enc.get_attention_mask().to_vec()))
    }
}

/// `whitespace_clean(basic_clean(text))` of the reference: ftfy's fixes, HTML unescaped
/// twice, runs of whitespace collapsed to one space, trimmed.
///
/// ftfy's `fix_text` cannot be reproduced in full (its mojibake repair is a statistical
/// model); we apply the fixes that change ordinary prompts: curly quotes to straight,
/// Latin ligatures split, full-width ASCII to ASCII, control characters removed.
pub fn prompt_clean(text: &str) -> String {
    let fixed: String = text
        .chars()
        .filter_map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => Some("'".to_string()),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => Some("\"".to_string()),
            '\u{FB00}' => Some("ff".into()),
            '\u{FB01}' => Some("fi".into()),
            '\u{FB02}' => Some("fl".into()),
            '\u{FB03}' => Some("ffi".into()),
            '\u{FB04}' => Some("ffl".into()),
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).map(String::from),
            '\u{3000}' => Some(" ".into()),
            '\n' | '\t' | '\r' => Some(c.to_string()),
            c if c.is_control() => None,
            c => Some(c.to_string()),
        })
        .collect();
    let unescaped = html_unescape(&html_unescape(&fixed));
    unescaped.split(is_py_space).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Python's `str.isspace`: Unicode whitespace plus the ASCII separators 0x1C-0x1F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

/// Python's `html.unescape` for numeric references and the named entities prompts use.
pub fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match decode_entity(rest) {
            Some((decoded, used)) => {
                out.push_str(&decoded);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes the entity at the start of `s` ("&...;"), returning the text and bytes used.
fn decode_entity(s: &str) -> Option<(String, usize)> {
    let body = &s[1..];
    if let Some(num) = body.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(h) => (h, 16, 3),
            None => (num, 10, 2),
        };
        let len = digits.chars().take_while(|c| c.is_digit(radix)).count();
        if len == 0 {
            return None;
        }
        let code = u32::from_str_radix(&digits[..len], radix).ok();
        let semicolon = digits[len..].starts_with(';') as usize;
        // As Python: invalid or surrogate code points become U+FFFD, 0x80-0x9F use cp1252.
        let c = code.map(cp1252_fixup).and_then(char::from_u32).filter(|&c| c != '\0').unwrap_or('\u{FFFD}');
        return Some((c.to_string(), skip + len + semicolon));
    }
    let name_len = body.chars().take_while(|c| c.is_ascii_alphanumeric()).count();
    let name = &body[..name_len];
    let value = named_entity(name)?;
    let semicolon = body[name_len..].starts_with(';') as usize;
    Some((value.to_string(), 1 + name_len + semicolon))
}

fn cp1252_fixup(code: u32) -> u32 {
    const TABLE: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
        0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x9D, 0x017E, 0x0178,
    ];
    if (0x80..=0x9F).contains(&code) {
        TABLE[(code - 0x80) as usize]
    } else {
        code
    }
}

fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" | "AMP" => "&",
        "lt" | "LT" => "<",
        "gt" | "GT" => ">",
        "quot" | "QUOT" => "\"",
        "apos" => "'",
        "nbsp" => "\u{a0}",
        "copy" => "\u{a9}",
        "reg" => "\u{ae}",
        "trade" => "\u{2122}",
        "hellip" => "\u{2026}",
        "mdash" => "\u{2014}",
        "ndash" => "\u{2013}",
        "lsquo" => "\u{2018}",
        "rsquo" => "\u{2019}",
        "ldquo" => "\u{201c}",
        "rdquo" => "\u{201d}",
        "laquo" => "\u{ab}",
        "raquo" => "\u{bb}",
        "deg" => "\u{b0}",
        "times" => "\u{d7}",
        "divide" => "\u{f7}",
        "middot" => "\u{b7}",
        "bull" => "\u{2022}",
        "eacute" => "\u{e9}",
        "egrave" => "\u{e8}",
        "aacute" => "\u{e1}",
        "agrave" => "\u{e0}",
        "ouml" => "\u{f6}",
        "uuml" => "\u{fc}",
        "auml" => "\u{e4}",
        "szlig" => "\u{df}",
        "ccedil" => "\u{e7}",
        "ntilde" => "\u{f1}",
        "euro" => "\u{20ac}",
        "pound" => "\u{a3}",
        "yen" => "\u{a5}",
        "cent" => "\u{a2}",
        "sect" => "\u{a7}",
        "para" => "\u{b6}",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_as_the_reference() {
        assert_eq!(prompt_clean("  two &amp; blue   boxes\n slide &lt;fast&gt;\t "), "two & blue boxes slide <fast>");
        assert_eq!(prompt_clean("&amp;lt;x&amp;gt;"), "<x>");
        assert_eq!(prompt_clean("Caf\u{e9} &#233; &#x41; &quot;q&quot; &nbsp;t"), "Caf\u{e9} \u{e9} A \"q\" t");
        assert_eq!(prompt_clean("\u{201c}quoted\u{201d}"), "\"quoted\"");
        assert_eq!(prompt_clean(""), "");
        assert_eq!(prompt_clean("a &unknown; b"), "a &unknown; b");
    }
}
