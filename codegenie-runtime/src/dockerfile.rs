//! A Dockerfile's instructions, each with the line it starts on, and its
//! stages (docs/architecture.md, "CI reports"). One reader for every use:
//! remembered builds take the images a Dockerfile builds on from it, CI
//! reports the line that causes a blocker.
//!
//! It follows what BuildKit's parser does with lines: parser directives at
//! the top (`# escape=` changes the escape character to a backtick), an
//! escape character at the end of a line continues the instruction on the
//! next one, comment and blank lines inside a continued instruction are
//! dropped, and the bodies of heredocs (`RUN <<EOF` ... `EOF`) belong to
//! their instruction. It is total: any text gives instructions (an empty
//! list for none), never an error or a panic; it does not judge whether the
//! Dockerfile would build.

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of its keyword (the first line of a continued instruction).
    pub line: usize,
    /// The keyword in upper case (`FROM`, `ENTRYPOINT`).
    pub keyword: String,
    /// What follows the keyword, continuation lines joined by a space,
    /// trimmed (heredoc bodies excluded).
    pub args: String,
    /// Whether it opens heredocs (their bodies are skipped, not parsed).
    pub heredoc: bool,
}

/// A stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Index of its `FROM` in [`Dockerfile::instructions`].
    pub from: usize,
    /// The image (or earlier stage) it builds on, as written.
    pub base: String,
    /// Its `AS` name.
    pub name: Option<String>,
    /// The earlier stage it builds on, when `base` names one (by name or index).
    pub parent: Option<usize>,
    /// Indexes of its instructions after the `FROM`.
    pub body: std::ops::Range<usize>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character in force (`\` or, by directive, `` ` ``).
    pub escape: char,
    /// 1-based line of the `# escape=` directive, when there is one.
    pub escape_directive: Option<usize>,
    /// Every instruction, in order.
    pub instructions: Vec<Instruction>,
    /// Every stage, in order (the last is the final image).
    pub stages: Vec<Stage>,
}

/// The arguments of `ENTRYPOINT`, `CMD` or `RUN`: exec form (a JSON array
/// of strings) or shell form (run by `/bin/sh -c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// `["/app/server", "--port", "80"]`.
    Exec(Vec<String>),
    /// `/app/start.sh --port 80`.
    Shell(String),
}

impl CommandForm {
    /// The form of `args`, as BuildKit reads it: a valid JSON array of
    /// strings is exec form, anything else is shell form.
    pub fn of(args: &str) -> CommandForm {
        let t = args.trim();
        if t.starts_with('[') {
            if let Ok(words) = serde_json::from_str::<Vec<String>>(t) {
                return CommandForm::Exec(words);
            }
        }
        CommandForm::Shell(t.to_owned())
    }
}

impl Dockerfile {
    /// Parse `text` (never fails; see the module docs).
    pub fn parse(text: &str) -> Dockerfile {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        let (escape, escape_directive, first) = directives(&lines);
        let mut instructions = Vec::new();
        let mut i = first;
        while i < lines.len() {
            let trimmed = lines[i].trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                i += 1;
                continue;
            }
            let start = i;
            let mut body = String::new();
            // Join continued lines; comment and blank lines inside are dropped.
            loop {
                let t = lines[i].trim();
                i += 1;
                if t.is_empty() || t.starts_with('#') {
                    if i >= lines.len() {
                        break;
                    }
                    continue;
                }
                let (part, continues) = match t.strip_suffix(escape) {
                    Some(p) => (p.trim_end(), true),
                    None => (t, false),
                };
                if !body.is_empty() && !part.is_empty() {
                    body.push(' ');
                }
                body.push_str(part);
                if !continues || i >= lines.len() {
                    break;
                }
            }
            let (keyword, args) = match body.split_once(char::is_whitespace) {
                Some((k, a)) => (k, a.trim()),
                None => (body.as_str(), ""),
            };
            let keyword = keyword.to_ascii_uppercase();
            let ends = if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
                heredoc_terminators(args)
            } else {
                Vec::new()
            };
            // Heredoc bodies follow the instruction, one after another.
            for (word, strip_tabs) in &ends {
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let l = if *strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if l == word {
                        break;
                    }
                }
            }
            instructions.push(Instruction {
                line: start + 1,
                keyword,
                args: args.to_owned(),
                heredoc: !ends.is_empty(),
            });
        }
        let stages = stages(&instructions);
        Dockerfile {
            escape,
            escape_directive,
            instructions,
            stages,
        }
    }

    /// The final stage (the last `FROM`), if there is one.
    pub fn final_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }

    /// The stages the final image is made of, final first, then the earlier
    /// stage it builds on, and so on: where it inherits its config from.
    pub fn final_chain(&self) -> Vec<&Stage> {
        let mut out = Vec::new();
        let mut cur = self.stages.len().checked_sub(1);
        while let Some(i) = cur {
            out.push(&self.stages[i]);
            // A parent is always an earlier stage, so this ends.
            cur = self.stages[i].parent.filter(|p| *p < i);
        }
        out
    }

    /// The instruction that sets `keyword` (`USER`, `ENTRYPOINT`, `CMD`) in
    /// the final image: the last one of the final stage, else of the stage
    /// it builds on, and so on. `CMD` follows Docker: an `ENTRYPOINT` set in
    /// a stage resets the `CMD` it inherited.
    pub fn effective(&self, keyword: &str) -> Option<&Instruction> {
        let keyword = keyword.to_ascii_uppercase();
        for stage in self.final_chain() {
            let body = &self.instructions[stage.body.clone()];
            if let Some(found) = body.iter().rev().find(|x| x.keyword == keyword) {
                return Some(found);
            }
            if keyword == "CMD" && body.iter().any(|x| x.keyword == "ENTRYPOINT") {
                return None;
            }
        }
        None
    }

    /// Every instruction named `keyword` that the final image inherits, in
    /// the final stage first (each stage's in file order).
    pub fn in_final_chain(&self, keyword: &str) -> Vec<&Instruction> {
        let keyword = keyword.to_ascii_uppercase();
        self.final_chain()
            .into_iter()
            .flat_map(|s| &self.instructions[s.body.clone()])
            .filter(|x| x.keyword == keyword)
            .collect()
    }

    /// 1-based line of the final stage's `FROM`.
    pub fn final_from_line(&self) -> Option<usize> {
        self.final_stage().map(|s| self.instructions[s.from].line)
    }
}

/// The escape character, the line of its directive, and the index of the
/// first line after the directives. Directives are `# name=value` lines at
/// the very top; the first other line (a blank one included) ends them.
fn directives(lines: &[&str]) -> (char, Option<usize>, usize) {
    let mut escape = '\\';
    let mut at = None;
    for (i, l) in lines.iter().enumerate() {
        let Some((name, value)) = directive(l) else {
            return (escape, at, i);
        };
        if name.eq_ignore_ascii_case("escape") && at.is_none() {
            // BuildKit refuses any other value; such a file does not build,
            // so the default is kept rather than guessing.
            match value {
                "`" => escape = '`',
                "\\" => escape = '\\',
                _ => {}
            }
            at = Some(i + 1);
        }
    }
    (escape, at, lines.len())
}

/// `# name = value` with a name of letters and digits.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    let mut chars = name.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim();
    (!value.is_empty()).then_some((name, value))
}

/// The heredocs `args` opens, in order: each terminator word and whether
/// leading tabs are stripped (`<<-`).
fn heredoc_terminators(args: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = args;
    while let Some(i) = rest.find("<<") {
        rest = &rest[i + 2..];
        let (strip, r) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (quote, r) = match r.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &r[1..]),
            _ => (None, r),
        };
        let word: String = r
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let starts_well = word
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let closed = match quote {
            Some(q) => r[word.len()..].starts_with(q),
            None => true,
        };
        if starts_well && closed {
            out.push((word, strip));
        }
    }
    out
}

/// The stages of `instructions`.
fn stages(instructions: &[Instruction]) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for (i, x) in instructions.iter().enumerate() {
        if x.keyword != "FROM" {
            continue;
        }
        if let Some(prev) = out.last_mut() {
            prev.body.end = i;
        }
        let mut words = x.args.split_whitespace().filter(|w| !w.starts_with("--"));
        let base = words.next().unwrap_or("").to_owned();
        let name = match (words.next(), words.next()) {
            (Some(kw), Some(n)) if kw.eq_ignore_ascii_case("as") => Some(n.to_owned()),
            _ => None,
        };
        let parent = out
            .iter()
            .position(|s| {
                s.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&base))
            })
            .or_else(|| base.parse::<usize>().ok().filter(|n| *n < out.len()));
        out.push(Stage {
            from: i,
            base,
            name,
            parent,
            body: i + 1..instructions.len(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(d: &Dockerfile) -> Vec<(usize, &str)> {
        d.instructions
            .iter()
            .map(|x| (x.line, x.keyword.as_str()))
            .collect()
    }

    #[test]
    fn continuations_report_the_first_line_and_skip_comments_inside() {
        let d = Dockerfile::parse(
            "FROM scratch\nENTRYPOINT [\"/bin/sh\", \\\n  # why\n\n  \"-c\", \\\n  \"exec app\"]\nUSER 0\n",
        );
        assert_eq!(lines_of(&d), [(1, "FROM"), (2, "ENTRYPOINT"), (7, "USER")]);
        assert_eq!(
            CommandForm::of(&d.instructions[1].args),
            CommandForm::Exec(vec!["/bin/sh".into(), "-c".into(), "exec app".into()])
        );
    }

    #[test]
    fn the_escape_directive_makes_backtick_the_continuation() {
        let d = Dockerfile::parse(
            "# escape=`\n\nFROM scratch\nCOPY a c:\\dir\\\nENTRYPOINT sh `\n  -c x\nCMD y\n",
        );
        assert_eq!(d.escape, '`');
        assert_eq!(d.escape_directive, Some(1));
        // A backslash at the end of a line is literal under this directive.
        assert_eq!(
            lines_of(&d),
            [(3, "FROM"), (4, "COPY"), (5, "ENTRYPOINT"), (7, "CMD")]
        );
        assert_eq!(d.instructions[2].args, "sh -c x");
        // A directive after a comment or blank line is only a comment.
        let late = Dockerfile::parse("# hello\n# escape=`\nFROM a `\nCMD b\n");
        assert_eq!(late.escape, '\\');
        assert_eq!(lines_of(&late), [(3, "FROM"), (4, "CMD")]);
        let late = Dockerfile::parse("\n# escape=`\nFROM a\n");
        assert_eq!((late.escape, late.escape_directive), ('\\', None));
    }

    #[test]
    fn heredoc_bodies_are_not_instructions() {
        let d = Dockerfile::parse(
            "FROM a\nRUN <<EOF\nENTRYPOINT [\"sh\"]\nEOF\nCOPY <<-\"X\" /x\n\tUSER 0\n\tX\nCMD [\"app\"]\n",
        );
        assert_eq!(
            lines_of(&d),
            [(1, "FROM"), (2, "RUN"), (5, "COPY"), (8, "CMD")]
        );
        assert!(d.instructions[1].heredoc && !d.instructions[3].heredoc);
        // Shift arithmetic is no heredoc.
        let d = Dockerfile::parse("FROM a\nRUN echo $((1<<2))\nCMD x\n");
        assert!(!d.instructions[1].heredoc);
        assert_eq!(d.instructions.len(), 3);
    }

    #[test]
    fn the_final_stage_inherits_only_from_the_stage_it_builds_on() {
        let d = Dockerfile::parse(
            "FROM debian AS build\nUSER root\nENTRYPOINT [\"/bin/sh\"]\nCMD [\"x\"]\nFROM scratch\nCOPY --from=build /a /a\n",
        );
        assert_eq!(d.stages.len(), 2);
        assert_eq!(d.final_from_line(), Some(5));
        assert!(d.effective("ENTRYPOINT").is_none());
        assert!(d.effective("USER").is_none());
        let d = Dockerfile::parse(
            "FROM debian AS base\nUSER root\nCMD [\"x\"]\nFROM base AS final\nENTRYPOINT [\"/app\"]\n",
        );
        assert_eq!(d.final_chain().len(), 2);
        assert_eq!(d.effective("USER").map(|x| x.line), Some(2));
        assert_eq!(d.effective("ENTRYPOINT").map(|x| x.line), Some(5));
        // ENTRYPOINT in the final stage resets the CMD it inherited.
        assert!(d.effective("CMD").is_none());
        // By index, and case-insensitively by name.
        let d = Dockerfile::parse("FROM a AS One\nUSER 0\nFROM one\nFROM 0\n");
        assert_eq!(d.stages[1].parent, Some(0));
        assert_eq!(d.stages[2].parent, Some(0));
        assert_eq!(d.effective("USER").map(|x| x.line), Some(2));
    }

    /// One generated instruction: keyword, words, and after which words
    /// the line is continued (with a comment or blank line inserted).
    type Gen = (usize, Vec<String>, Vec<(bool, u8)>);

    fn arb_instruction() -> impl proptest::strategy::Strategy<Value = Gen> {
        use proptest::prelude::*;
        (
            0..KEYWORDS.len(),
            proptest::collection::vec("[a-z0-9/.\\[\\]\"=-]{1,8}", 1..6),
            proptest::collection::vec((any::<bool>(), 0u8..3), 0..6),
        )
    }

    const KEYWORDS: [&str; 6] = ["FROM", "RUN", "ENTRYPOINT", "CMD", "USER", "EXPOSE"];

    proptest::proptest! {
        #[test]
        fn each_instruction_is_found_on_its_keywords_line(
            backtick in proptest::prelude::any::<bool>(),
            comments in proptest::collection::vec(0u8..3, 0..4),
            gens in proptest::collection::vec(arb_instruction(), 0..8),
        ) {
            let esc = if backtick { '`' } else { '\\' };
            let mut text = String::new();
            let mut line = 1;
            if backtick {
                text.push_str("# escape=`\n");
                line += 1;
            }
            for c in &comments {
                text.push_str(["# note\n", "\n", "   # indented\n"][*c as usize]);
                line += 1;
            }
            let mut expected = Vec::new();
            for (k, words, breaks) in &gens {
                expected.push((line, KEYWORDS[*k]));
                text.push_str(KEYWORDS[*k]);
                for (i, w) in words.iter().enumerate() {
                    text.push(' ');
                    text.push_str(w);
                    if let Some((_, extra)) = breaks.get(i).filter(|(cont, _)| *cont) {
                        if i + 1 < words.len() {
                            text.push(' ');
                            text.push(esc);
                            text.push('\n');
                            line += 1;
                            // A comment or blank line inside the instruction.
                            for _ in 0..*extra {
                                text.push_str("  # inside\n");
                                line += 1;
                            }
                        }
                    }
                }
                text.push('\n');
                line += 1;
            }
            // Words ending in the other escape character stay literal.
            let d = Dockerfile::parse(&text);
            let got: Vec<(usize, &str)> = d.instructions.iter().map(|x| (x.line, x.keyword.as_str())).collect();
            let last_word_escapes = gens.iter().any(|(_, w, _)| w.iter().any(|w| w.ends_with(esc)));
            if !last_word_escapes {
                proptest::prop_assert_eq!(got, expected, "{}", text);
            }
        }
    }

    #[test]
    fn odd_text_gives_what_it_can() {
        assert!(Dockerfile::parse("").instructions.is_empty());
        assert!(Dockerfile::parse("\u{feff}# escape=`")
            .instructions
            .is_empty());
        let d = Dockerfile::parse("\u{feff}from a \\");
        assert_eq!(lines_of(&d), [(1, "FROM")]);
        assert_eq!(d.stages[0].base, "a");
        let d = Dockerfile::parse("FROM\r\nRUN <<\"A\nCMD\r\n");
        assert_eq!(lines_of(&d), [(1, "FROM"), (2, "RUN"), (3, "CMD")]);
    }
}
