//! Prompt moderation: a policy of categories (terms, co-occurring word lists, regular
//! expressions), each with the message a refused user reads, applied to a prompt before
//! any work. A default policy ships (`policy/default.toml`); a policy file of the same
//! form replaces it. Refusals can be appended to an audit log (JSON Lines).
//!
//! Matching is on words: the prompt is lowercased and every run of characters that are
//! not letters or digits becomes one space, so "Gore!" and "GORE" match `gore` and
//! "gorgeous" does not. Multi-word terms match as word sequences. Patterns see the prompt
//! as written.

use std::io::Write;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::Result;

/// The policy tessera ships with.
pub const DEFAULT_POLICY: &str = include_str!("../policy/default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    category: Vec<CategoryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    name: String,
    message: String,
    #[serde(default)]
    terms: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    all: Vec<Vec<String>>,
}

/// One category of refused prompts.
#[derive(Debug)]
pub struct Category {
    pub name: String,
    pub message: String,
    /// Normalised terms (words separated by single spaces).
    terms: Vec<String>,
    patterns: Vec<Regex>,
    all: Vec<Vec<String>>,
}

/// A policy: categories checked in order; the first that matches refuses the prompt.
#[derive(Debug)]
pub struct Policy {
    pub categories: Vec<Category>,
    /// Where it came from ("default" or the file), for the audit log.
    pub source: String,
}

/// Why a prompt was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub category: String,
    pub message: String,
    /// The term, word pair or pattern that matched.
    pub matched: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the prompt was refused by the content policy ({}): {}", self.category, self.message)
    }
}

/// Lowercase words separated by single spaces, with a space at both ends so a term
/// " gore " matches whole words only.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut space = true;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if !space {
        out.push(' ');
    }
    out
}

impl Policy {
    /// The policy that ships with tessera.
    pub fn default_policy() -> Policy {
        Policy::parse(DEFAULT_POLICY, "default").expect("the default policy parses")
    }

    /// Reads a policy file (TOML, the form of `policy/default.toml`).
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read policy {}: {e}", path.display())))?;
        Policy::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, source: &str) -> Result<Policy> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("policy {source}: {}", e.message().trim())))?;
        let mut categories = Vec::new();
        for c in file.category {
            let words = |t: &String| normalize(t);
            let mut patterns = Vec::new();
            for p in &c.patterns {
                patterns.push(Regex::new(p).map_err(|e| {
                    Error::Invalid(format!(
                        "policy {source}: category {:?}: pattern {p:?} is not a regular expression ({e})",
                        c.name
                    ))
                })?);
            }
            if c.terms.is_empty() && c.patterns.is_empty() && c.all.is_empty() {
                return Err(Error::Invalid(format!(
                    "policy {source}: category {:?} has no terms, patterns or all",
                    c.name
                )));
            }
            categories.push(Category {
                terms: c.terms.iter().map(words).filter(|t| t.trim() != "").collect(),
                all: c.all.iter().map(|l| l.iter().map(words).collect()).collect(),
                patterns,
                name: c.name,
                message: c.message,
            });
        }
        Ok(Policy { categories, source: source.to_string() })
    }

    /// None if the prompt may be generated, else why not.
    pub fn check(&self, prompt: &str) -> Option<Refusal> {
        let words = normalize(prompt);
        for c in &self.categories {
            let refuse =
                |matched: String| Some(Refusal { category: c.name.clone(), message: c.message.clone(), matched });
            if let Some(t) = c.terms.iter().find(|t| words.contains(t.as_str())) {
                return refuse(t.trim().to_string());
            }
            if let Some(p) = c.patterns.iter().find(|p| p.is_match(prompt)) {
                return refuse(p.as_str().to_string());
            }
            if !c.all.is_empty() {
                let hits: Option<Vec<&str>> = c
                    .all
                    .iter()
                    .map(|list| list.iter().find(|t| words.contains(t.as_str())).map(|t| t.trim()))
                    .collect();
                if let Some(hits) = hits {
                    return refuse(hits.join(" + "));
                }
            }
        }
        None
    }
}

/// SHA-256 of the prompt, hex: how provenance and the audit log name a prompt without
/// keeping its text.
pub fn prompt_hash(prompt: &str) -> String {
    Sha256::digest(prompt.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends one refusal to a JSON Lines audit log (created with its folder if missing):
/// time (Unix seconds), who asked (the CLI, or the server's key id), the policy, the
/// category and what matched, and the prompt with its hash.
pub fn audit(path: &Path, who: &str, policy: &Policy, prompt: &str, refusal: &Refusal) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Invalid(format!("cannot create audit log folder {}: {e}", dir.display())))?;
    }
    let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let line = serde_json::json!({
        "time": time,
        "decision": "refused",
        "who": who,
        "policy": policy.source,
        "category": refusal.category,
        "matched": refusal.matched,
        "prompt_sha256": prompt_hash(prompt),
        "prompt": prompt,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::Invalid(format!("cannot open audit log {}: {e}", path.display())))?;
    writeln!(f, "{line}").map_err(|e| Error::Invalid(format!("cannot write audit log {}: {e}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_refuses_and_allows() {
        let p = Policy::default_policy();
        for ok in [
            "a red ball bounces on a wooden floor",
            "a gorgeous sunset over the sea",
            "a child plays with a blue ball in the park",
            "two boxes collide; the camera pans left",
            "Al Gore gives a speech",
        ] {
            assert_eq!(p.check(ok), None, "{ok}");
        }
        let r = p.check("Extreme GORY scene, a body DISMEMBERED!").unwrap();
        assert_eq!(r.category, "graphic-violence");
        let r = p.check("a naked child").unwrap();
        assert_eq!((r.category.as_str(), r.matched.as_str()), ("sexual-minors", "child + naked"));
        let r = p.check("Fake footage of the president announcing the election is cancelled").unwrap();
        assert_eq!(r.category, "election-deception");
    }

    #[test]
    fn words_not_substrings() {
        let p = Policy::parse("[[category]]\nname = \"x\"\nmessage = \"no\"\nterms = [\"sex scene\", \"gore\"]\n", "t")
            .unwrap();
        assert!(p.check("Al Gore speaks").is_some());
        assert!(p.check("gorgeous goretex").is_none());
        assert!(p.check("a SEX--scene").is_some());
        assert!(p.check("sussex scenery").is_none());
    }

    #[test]
    fn bad_policies_are_clear_errors() {
        let e = Policy::parse("[[category]]\nname = \"x\"\nmessage = \"m\"\npatterns = [\"(\"]\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml") && e.contains("pattern"), "{e}");
        let e = Policy::parse("[[category]]\nname = \"x\"\nmessage = \"m\"\n", "p.toml").unwrap_err().to_string();
        assert!(e.contains("no terms"), "{e}");
        let e = Policy::parse("[[category]]\nname = \"x\"\n", "p.toml").unwrap_err().to_string();
        assert!(e.contains("p.toml") && e.contains("message"), "{e}");
    }

    #[test]
    fn audit_log_appends_json_lines() {
        let dir = std::env::temp_dir().join(format!("tessera-audit-{}", std::process::id()));
        let path = dir.join("sub/audit.jsonl");
        let p = Policy::default_policy();
        let r = p.check("gory").unwrap();
        audit(&path, "cli", &p, "gory", &r).unwrap();
        audit(&path, "cli", &p, "gory", &r).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["category"], "graphic-violence");
        assert_eq!(lines[0]["prompt_sha256"], prompt_hash("gory"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
