//! The `Range` header (RFC 9110 section 14): one byte range, or the whole body.

/// What to send for a `Range` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: send the whole representation (200).
    Whole,
    /// Send bytes `start..=end` (206).
    Partial { start: u64, end: u64 },
    /// No range overlaps the representation (416).
    Unsatisfiable,
}

/// Interprets a `Range` header value for a body of `len` bytes. Several ranges, other units
/// and syntax errors are answered with the whole body, as RFC 9110 allows.
pub fn parse(value: &str, len: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(suffix) = number(last) else {
            return RangeAnswer::Whole;
        };
        if suffix == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        let start = len.saturating_sub(suffix);
        return RangeAnswer::Partial {
            start,
            end: len - 1,
        };
    }
    let Some(start) = number(first) else {
        return RangeAnswer::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(end) if end >= start => end,
            _ => return RangeAnswer::Whole,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.min(len - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse("bytes=0-9", 100),
            RangeAnswer::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            parse("bytes=90-", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse("bytes=-10", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse("bytes=-1000", 100),
            RangeAnswer::Partial { start: 0, end: 99 }
        );
        assert_eq!(
            parse("bytes=50-1000", 100),
            RangeAnswer::Partial { start: 50, end: 99 }
        );
        assert_eq!(parse("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse("bytes=5-1", 100), RangeAnswer::Whole);
        assert_eq!(parse("bytes=0-1,5-6", 100), RangeAnswer::Whole);
        assert_eq!(parse("items=0-1", 100), RangeAnswer::Whole);
        assert_eq!(parse("bytes=x-1", 100), RangeAnswer::Whole);
    }
}
