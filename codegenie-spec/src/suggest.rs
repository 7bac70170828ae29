//! "Did you mean": the closest known word to a misspelt one, with one
//! threshold for the whole workspace (macro keys and values, token kinds,
//! probe names).

/// The candidate closest to `word` (Damerau-Levenshtein distance, compared
/// case-insensitively), if it is close enough to be what the user meant: at
/// most 2 edits, or a third of the candidate's length for longer words.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                c,
                strsim::damerau_levenshtein(&word, &c.to_ascii_lowercase()),
            )
        })
        .filter(|(c, d)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(_, d)| *d)
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn near_misses_and_strangers() {
        let keys = ["name", "heaviness", "runs_last"];
        assert_eq!(closest("heavyness", keys), Some("heaviness"));
        assert_eq!(closest("Name", keys), Some("name"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(
            closest("image-digst", ["image-digest"]),
            Some("image-digest")
        );
        assert_eq!(
            closest("runtime_trac", ["runtime_trace", "file_census"]),
            Some("runtime_trace")
        );
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }
}
