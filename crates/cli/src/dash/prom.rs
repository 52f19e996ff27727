//! Just enough of the Prometheus text format to read a node's `/metrics`: one sample per line,
//! `name{label="value",...} number`, comments skipped. Escapes in label values (`\"`, `\\`,
//! `\n`) are undone. A line that does not parse is skipped, not fatal: the dashboard shows what
//! it can read.

/// One sample.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Every sample of `text` that parses.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(|line| parse_line(line.trim())).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if rest.starts_with('{') {
        let (parsed, after) = parse_labels(&rest[1..])?;
        labels = parsed;
        rest = after;
    }
    // The value, then an optional timestamp.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

/// Labels up to the closing brace; the rest of the line after it.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim().to_owned();
        text = text[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = text.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key, value));
        text = &text[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_labels_and_escapes() {
        let text = "# HELP edgekv_outbox_depth Writes waiting.\n\
                    # TYPE edgekv_outbox_depth gauge\n\
                    edgekv_outbox_depth{peer=\"enam\"} 3\n\
                    edgekv_replication_lag_seconds_bucket{origin=\"wnam\",le=\"+Inf\"} 12\n\
                    edgekv_odd{a=\"x\\\"y\",b=\"back\\\\slash\"} 1.5e3 1700000000\n\
                    edgekv_node 1\n\
                    garbage{unclosed=\"x 1\n\
                    # EOF\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "edgekv_outbox_depth");
        assert_eq!(samples[0].label("peer"), Some("enam"));
        assert_eq!(samples[0].value, 3.0);
        assert_eq!(samples[1].label("le"), Some("+Inf"));
        assert_eq!(samples[2].label("a"), Some("x\"y"));
        assert_eq!(samples[2].label("b"), Some("back\\slash"));
        assert_eq!(samples[2].value, 1500.0);
        assert_eq!(samples[3].labels, vec![]);
    }
}
