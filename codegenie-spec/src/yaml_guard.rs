//! Cheap checks on scenario-file text before the YAML parser sees it: the
//! parser's time grows badly with nesting (100 000 nested `[` took over a
//! minute), and no valid scenario file nests deeper than a few levels.

/// The deepest nesting accepted (flow `[`/`{` plus block indentation levels).
pub(crate) const MAX_DEPTH: usize = 32;

/// The 1-based line where flow nesting (`[`, `{` outside quotes and
/// comments) first goes deeper than `max`, if it does.
pub(crate) fn too_deep(text: &str, max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    // Whether the previous character allows a `#` to start a comment.
    let mut after_space = true;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                line += 1;
                after_space = true;
                continue;
            }
            '#' if after_space => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
                after_space = true;
                continue;
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        // An escaped character, possibly an escaped line break.
                        '\\' if chars.next() == Some('\n') => line += 1,
                        '"' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '\'' if after_space || depth > 0 => {
                // `''` inside is an escaped quote: the loop sees two quotes.
                for c in chars.by_ref() {
                    match c {
                        '\'' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > max {
                    return Some(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        after_space = c == ' ' || c == '\t' || c == '[' || c == '{' || c == ',';
    }
    None
}

/// The 1-based line of the second `name: <name>` entry, for a duplicate
/// scenario error (serde reports those at the top of the document).
pub(crate) fn second_name_line(text: &str, name: &str) -> Option<usize> {
    let mut seen = 0;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start().trim_start_matches('-').trim_start();
        let Some(v) = t.strip_prefix("name:") else {
            continue;
        };
        let v = v.split(" #").next().unwrap_or(v).trim();
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        if v == name {
            seen += 1;
            if seen == 2 {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The 1-based line of the top-level `key:`, for errors serde reports at
/// the top of the document.
pub(crate) fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_depth_is_counted_outside_strings_and_comments() {
        assert_eq!(too_deep("a: [[[x]]]\n", 3), None);
        assert_eq!(too_deep("a: 1\nb: [[[[x]]]]\n", 3), Some(2));
        assert_eq!(too_deep("a: \"[[[[\" # {{{{\nb: '[[[['\n", 3), None);
        assert_eq!(too_deep("a: [ '[[[[', \"]]\" ]\n", 1), None);
    }

    #[test]
    fn the_second_name_is_found() {
        let t = "scenarios:\n  - name: startup\n    steps: []\n  - name: \"startup\"\n";
        assert_eq!(second_name_line(t, "startup"), Some(4));
        assert_eq!(second_name_line(t, "other"), None);
        assert_eq!(key_line(t, "scenarios"), Some(1));
        assert_eq!(key_line("version: 1\n  scenarios: x\n", "scenarios"), None);
    }
}
