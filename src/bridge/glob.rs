//! A tiny glob matcher for tensor names: `*` matches any run of characters (dots included),
//! `?` exactly one character, everything else itself. No character classes, no escapes.

/// Whether `name` matches `pattern` (whole-string match, by Unicode scalar values).
///
/// ```
/// use sdq::bridge::glob::matches;
/// assert!(matches("*.weight", "model.layers.0.mlp.weight"));
/// assert!(matches("layer?.bias", "layer3.bias"));
/// assert!(!matches("*.bias", "fc1.weight"));
/// ```
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    // Classic linear-time wildcard matching with one backtrack point (the last `*`).
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == s.get(si) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn cases() {
        for (p, s, want) in [
            ("*", "", true),
            ("*", "abc", true),
            ("", "", true),
            ("", "a", false),
            ("a", "a", true),
            ("?", "", false),
            ("?", "é", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("*.weight", "fc1.weight", true),
            ("*.weight", "fc1.weight.x", false),
            ("fc?.*", "fc1.bias", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxb", true),
            ("*a*b", "xxaxxbxxc", false),
            ("**", "x", true),
        ] {
            assert_eq!(matches(p, s), want, "{p:?} vs {s:?}");
        }
    }
}
