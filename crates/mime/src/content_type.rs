//! File extension ↔ media type, for attachments.

/// The media type `compose` gives an attachment named `filename`, guessed
/// from its extension (case-insensitive); `application/octet-stream` when
/// the extension is unknown or missing.
pub fn guess_content_type(filename: &str) -> &'static str {
    let Some((stem, extension)) = filename.rsplit_once('.') else {
        return DEFAULT_TYPE;
    };
    // ".bashrc" has no extension, it is a hidden file named "bashrc".
    if stem.is_empty() || stem.ends_with(['/', '\\']) {
        return DEFAULT_TYPE;
    }
    TABLE
        .iter()
        .find(|(ext, _)| ext.eq_ignore_ascii_case(extension))
        .map_or(DEFAULT_TYPE, |(_, media_type)| media_type)
}

/// The extension (without the dot) conventionally used for `media_type`,
/// for naming an attachment that came without a file name. `bin` when the
/// type is not in the table.
pub(crate) fn extension_for(media_type: &str) -> &'static str {
    TABLE
        .iter()
        .find(|(_, known)| known.eq_ignore_ascii_case(media_type))
        .map_or("bin", |(ext, _)| ext)
}

const DEFAULT_TYPE: &str = "application/octet-stream";

/// Extension → media type (IANA registrations). The first row of a media
/// type gives its preferred extension for `extension_for`.
const TABLE: &[(&str, &str)] = &[
    ("txt", "text/plain"),
    ("text", "text/plain"),
    ("html", "text/html"),
    ("htm", "text/html"),
    ("csv", "text/csv"),
    ("xml", "application/xml"),
    ("json", "application/json"),
    ("ics", "text/calendar"),
    ("vcf", "text/vcard"),
    ("md", "text/markdown"),
    ("eml", "message/rfc822"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("bmp", "image/bmp"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tgz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("7z", "application/x-7z-compressed"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("rtf", "application/rtf"),
    ("mp3", "audio/mpeg"),
    ("wav", "audio/wav"),
    ("ogg", "audio/ogg"),
    ("mp4", "video/mp4"),
    ("asc", "application/pgp-signature"),
    ("p7s", "application/pkcs7-signature"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let rows = [
            ("report.pdf", "application/pdf"),
            ("REPORT.PDF", "application/pdf"),
            ("a.b.png", "image/png"),
            ("photo.jpg", "image/jpeg"),
            ("photo.JPEG", "image/jpeg"),
            ("anim.gif", "image/gif"),
            ("notes.txt", "text/plain"),
            ("page.html", "text/html"),
            ("x.zip", "application/zip"),
            ("x.tar.gz", "application/gzip"),
            ("d.json", "application/json"),
            ("t.csv", "text/csv"),
            ("c.xml", "application/xml"),
            ("w.doc", "application/msword"),
            (
                "w.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            ("s.xls", "application/vnd.ms-excel"),
            (
                "s.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            ("fwd.eml", "message/rfc822"),
            ("noext", "application/octet-stream"),
            (".bashrc", "application/octet-stream"),
            ("dir/.pdf", "application/octet-stream"),
            ("trailing.", "application/octet-stream"),
            ("x.unknown", "application/octet-stream"),
            ("", "application/octet-stream"),
        ];
        for (name, expected) in rows {
            assert_eq!(guess_content_type(name), expected, "{name:?}");
        }
    }

    #[test]
    fn extension_round_trip() {
        assert_eq!(extension_for("application/pdf"), "pdf");
        assert_eq!(extension_for("IMAGE/JPEG"), "jpg");
        assert_eq!(extension_for("message/rfc822"), "eml");
        assert_eq!(extension_for("application/x-unknown"), "bin");
        for (ext, media_type) in TABLE {
            assert_eq!(guess_content_type(&format!("f.{ext}")), *media_type);
        }
    }
}
