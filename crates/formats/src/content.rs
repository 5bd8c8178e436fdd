use std::fmt;

/// A format Sluice can ingest, identified by the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentKind {
    Csv,
    Xlsx,
    /// A JSON array of objects (one record each), or one object.
    Json,
    /// Newline-delimited JSON: one object per line.
    Ndjson,
    Png,
    Jpeg,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported content type {given:?}; supported: {}", ContentKind::SUPPORTED.join(", "))]
pub struct UnsupportedContentType {
    pub given: String,
}

const XLSX_MIME: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

impl ContentKind {
    /// Canonical media types, in the order error messages list them.
    pub const SUPPORTED: [&'static str; 6] =
        ["text/csv", XLSX_MIME, "application/json", "application/x-ndjson", "image/png", "image/jpeg"];

    /// Parses a `Content-Type` header value. Parameters are ignored except `charset`,
    /// which must be UTF-8 (or its ASCII subset) because text is stored and parsed as UTF-8.
    pub fn from_content_type(header: &str) -> Result<Self, UnsupportedContentType> {
        let unsupported = || UnsupportedContentType { given: header.to_owned() };
        let mut parts = header.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let kind = match essence.as_str() {
            "text/csv" | "application/csv" => Self::Csv,
            XLSX_MIME => Self::Xlsx,
            "application/json" => Self::Json,
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Self::Ndjson,
            "image/png" => Self::Png,
            "image/jpeg" | "image/jpg" => Self::Jpeg,
            _ => return Err(unsupported()),
        };
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else { continue };
            if name.trim().eq_ignore_ascii_case("charset") {
                let charset = value.trim().trim_matches('"').to_ascii_lowercase();
                if !matches!(charset.as_str(), "utf-8" | "utf8" | "us-ascii") {
                    return Err(unsupported());
                }
            }
        }
        Ok(kind)
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::Xlsx => XLSX_MIME,
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }

    /// File extension used for raw-zone keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }

    pub fn from_extension(extension: &str) -> Option<Self> {
        [Self::Csv, Self::Xlsx, Self::Json, Self::Ndjson, Self::Png, Self::Jpeg]
            .into_iter()
            .find(|kind| kind.extension() == extension)
    }

    /// The kind a file's extension names, in any case and with the usual aliases (`jpeg`,
    /// `jsonl`), for clients choosing a `Content-Type`.
    pub fn from_file_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "jpeg" => Some(Self::Jpeg),
            "jsonl" => Some(Self::Ndjson),
            extension => Self::from_extension(extension),
        }
    }

    pub fn is_image(self) -> bool {
        matches!(self, Self::Png | Self::Jpeg)
    }
}

impl fmt::Display for ContentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_supported_types_and_aliases() {
        let cases = [
            ("text/csv", ContentKind::Csv),
            ("Text/CSV; charset=UTF-8", ContentKind::Csv),
            ("application/csv", ContentKind::Csv),
            (XLSX_MIME, ContentKind::Xlsx),
            ("application/json", ContentKind::Json),
            ("application/json; charset=\"utf-8\"", ContentKind::Json),
            ("application/x-ndjson", ContentKind::Ndjson),
            ("application/jsonl", ContentKind::Ndjson),
            ("image/png", ContentKind::Png),
            ("image/jpeg", ContentKind::Jpeg),
        ];
        for (header, kind) in cases {
            assert_eq!(ContentKind::from_content_type(header), Ok(kind), "{header}");
        }
    }

    #[test]
    fn rejects_unknown_types_and_non_utf8_charsets() {
        for header in ["", "text/plain", "application/xml", "image/gif", "text/csv; charset=latin1"] {
            let err = ContentKind::from_content_type(header).unwrap_err();
            assert_eq!(err.given, header);
            assert!(err.to_string().contains("text/csv"), "the error lists what is supported");
        }
    }

    #[test]
    fn every_kind_round_trips_through_mime_and_extension() {
        for mime in ContentKind::SUPPORTED {
            let kind = ContentKind::from_content_type(mime).unwrap();
            assert_eq!(kind.mime(), mime);
            assert_eq!(ContentKind::from_extension(kind.extension()), Some(kind));
            assert_eq!(ContentKind::from_file_extension(&kind.extension().to_uppercase()), Some(kind));
        }
    }

    #[test]
    fn file_extensions_take_the_usual_aliases() {
        assert_eq!(ContentKind::from_file_extension("jpeg"), Some(ContentKind::Jpeg));
        assert_eq!(ContentKind::from_file_extension("JPG"), Some(ContentKind::Jpeg));
        assert_eq!(ContentKind::from_file_extension("jsonl"), Some(ContentKind::Ndjson));
        assert_eq!(ContentKind::from_file_extension("txt"), None);
    }
}
