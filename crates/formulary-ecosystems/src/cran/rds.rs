//! A small part of R's serialization format (what `saveRDS` writes and `readRDS` reads, before
//! compression): XDR (big-endian) streams of format version 2 or 3 holding NULL, logical,
//! integer, double, character vectors and lists, with attributes. That is enough for CRAN's
//! `Meta/archive.rds` (a named list of data frames) and `PACKAGES.rds`-like tables.
//!
//! Not supported, and refused with an error when read: environments, closures, language
//! objects, complex and raw vectors, and ALTREP classes other than R's compact sequences and
//! wrappers.

use thiserror::Error;

/// An R value: its data and its attributes (`names`, `class`, `row.names`, …) in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RValue {
    /// The data.
    pub data: RData,
    /// The attributes, by name.
    pub attributes: Vec<(String, RValue)>,
}

/// The data of an R value. Missing values are `None` (`NA` in R).
#[derive(Debug, Clone, PartialEq)]
pub enum RData {
    /// `NULL`.
    Null,
    /// A logical vector.
    Logical(Vec<Option<bool>>),
    /// An integer vector.
    Integer(Vec<Option<i32>>),
    /// A double vector (R's `NA_real_` reads as a NaN).
    Double(Vec<f64>),
    /// A character vector.
    Character(Vec<Option<String>>),
    /// A generic vector (`list`).
    List(Vec<RValue>),
}

/// Why a serialized R value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RdsError {
    /// The stream ended early.
    #[error("the RDS data ends before the value does")]
    Truncated,
    /// Not an XDR serialization of format 2 or 3.
    #[error(
        "not an RDS stream that Formulary reads ({0}); expected R's XDR format, version 2 or 3"
    )]
    Header(String),
    /// An R type this reader does not handle.
    #[error("the RDS data holds an R object of type {0}, which Formulary does not read")]
    Unsupported(u32),
    /// Inconsistent content.
    #[error("the RDS data is malformed: {0}")]
    Malformed(String),
}

const NILSXP: u32 = 0;
const SYMSXP: u32 = 1;
const LISTSXP: u32 = 2;
const CHARSXP: u32 = 9;
const LGLSXP: u32 = 10;
const INTSXP: u32 = 13;
const REALSXP: u32 = 14;
const STRSXP: u32 = 16;
const VECSXP: u32 = 19;
const ALTREP_SXP: u32 = 238;
const NILVALUE_SXP: u32 = 254;
const REFSXP: u32 = 255;

const IS_OBJECT: u32 = 1 << 8;
const HAS_ATTRIBUTES: u32 = 1 << 9;
const HAS_TAG: u32 = 1 << 10;
/// `CHARSXP` levels: the string is UTF-8, or plain ASCII.
const UTF8_LEVEL: u32 = 1 << 3;
const ASCII_LEVEL: u32 = 1 << 6;
const NA_INTEGER: i32 = i32::MIN;
/// The R version written in headers (4.2.0) and the oldest reader of format 2 (2.3.0).
const WRITER_VERSION: u32 = (4 << 16) | (2 << 8);
const MIN_READER_VERSION: u32 = (2 << 16) | (3 << 8);
/// Nesting deeper than this is refused (archive.rds nests three levels).
const MAX_DEPTH: usize = 64;

impl RValue {
    /// A value without attributes.
    pub fn new(data: RData) -> RValue {
        RValue {
            data,
            attributes: Vec::new(),
        }
    }

    /// The same value with one more attribute.
    pub fn with_attribute(mut self, name: &str, value: RValue) -> RValue {
        self.attributes.push((name.to_owned(), value));
        self
    }

    /// A character vector without missing values.
    pub fn strings<S: AsRef<str>>(items: &[S]) -> RValue {
        RValue::new(RData::Character(
            items
                .iter()
                .map(|item| Some(item.as_ref().to_owned()))
                .collect(),
        ))
    }

    /// The attribute of that name.
    pub fn attribute(&self, name: &str) -> Option<&RValue> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The strings of a character vector (missing values skipped); empty for other types.
    pub fn as_strings(&self) -> Vec<&str> {
        match &self.data {
            RData::Character(items) => items.iter().flatten().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// Serializes a value as R's `serialize(x, NULL, xdr = TRUE, version = 2)` does: the bytes of an
/// uncompressed `.rds` file (gzip them for `saveRDS`'s default).
pub fn serialize(value: &RValue) -> Vec<u8> {
    let mut writer = Writer {
        out: b"X\n".to_vec(),
        symbols: Vec::new(),
    };
    for number in [2, WRITER_VERSION, MIN_READER_VERSION] {
        writer.int(number);
    }
    writer.item(value);
    writer.out
}

struct Writer {
    out: Vec<u8>,
    /// Symbols written so far: a repeated one is a reference to its first position (from 1).
    symbols: Vec<String>,
}

impl Writer {
    fn int(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn length(&mut self, length: usize) {
        // Vectors this long do not occur here; R's long-vector form would be -1 and two words.
        self.int(u32::try_from(length).unwrap_or(u32::MAX >> 1));
    }

    fn item(&mut self, value: &RValue) {
        let has_attributes = !value.attributes.is_empty();
        let is_object = value.attribute("class").is_some();
        let kind = match &value.data {
            RData::Null => {
                self.int(NILVALUE_SXP);
                return;
            }
            RData::Logical(_) => LGLSXP,
            RData::Integer(_) => INTSXP,
            RData::Double(_) => REALSXP,
            RData::Character(_) => STRSXP,
            RData::List(_) => VECSXP,
        };
        let mut flags = kind;
        if is_object {
            flags |= IS_OBJECT;
        }
        if has_attributes {
            flags |= HAS_ATTRIBUTES;
        }
        self.int(flags);
        match &value.data {
            RData::Null => {}
            RData::Logical(items) => {
                self.length(items.len());
                for item in items {
                    self.int(item.map_or(NA_INTEGER as u32, u32::from));
                }
            }
            RData::Integer(items) => {
                self.length(items.len());
                for item in items {
                    self.int(item.unwrap_or(NA_INTEGER) as u32);
                }
            }
            RData::Double(items) => {
                self.length(items.len());
                for item in items {
                    self.out.extend_from_slice(&item.to_be_bytes());
                }
            }
            RData::Character(items) => {
                self.length(items.len());
                for item in items {
                    self.string(item.as_deref());
                }
            }
            RData::List(items) => {
                self.length(items.len());
                for item in items {
                    self.item(item);
                }
            }
        }
        if has_attributes {
            for (name, attribute) in &value.attributes {
                self.int(LISTSXP | HAS_TAG);
                self.symbol(name);
                self.item(attribute);
            }
            self.int(NILVALUE_SXP);
        }
    }

    fn string(&mut self, text: Option<&str>) {
        match text {
            None => {
                self.int(CHARSXP);
                self.int(u32::MAX);
            }
            Some(text) => {
                let level = if text.is_ascii() {
                    ASCII_LEVEL
                } else {
                    UTF8_LEVEL
                };
                self.int(CHARSXP | (level << 12));
                self.length(text.len());
                self.out.extend_from_slice(text.as_bytes());
            }
        }
    }

    fn symbol(&mut self, name: &str) {
        match self.symbols.iter().position(|known| known == name) {
            Some(index) => self.int(((index as u32 + 1) << 8) | REFSXP),
            None => {
                self.symbols.push(name.to_owned());
                self.int(SYMSXP);
                self.string(Some(name));
            }
        }
    }
}

/// Reads a value written by `serialize(x, NULL, xdr = TRUE)` (format 2 or 3), as found in an
/// `.rds` file once decompressed.
pub fn deserialize(bytes: &[u8]) -> Result<RValue, RdsError> {
    let mut reader = Reader {
        bytes,
        at: 0,
        symbols: Vec::new(),
    };
    let format = reader.take(2)?;
    if format != b"X\n" {
        return Err(RdsError::Header(format!(
            "it starts with {:?}",
            String::from_utf8_lossy(format)
        )));
    }
    let version = reader.int()?;
    reader.int()?;
    reader.int()?;
    match version {
        2 => {}
        3 => {
            let length = reader.length()?;
            reader.take(length)?;
        }
        other => return Err(RdsError::Header(format!("format version {other}"))),
    }
    reader.item(0)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    symbols: Vec<String>,
}

/// What a reference or symbol stands for while reading.
enum Read {
    Value(RValue),
    Symbol(String),
}

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Result<&[u8], RdsError> {
        let end = self.at.checked_add(count).ok_or(RdsError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(RdsError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn int(&mut self) -> Result<u32, RdsError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn length(&mut self) -> Result<usize, RdsError> {
        let length = self.int()? as i32;
        let length = if length == -1 {
            let upper = u64::from(self.int()?);
            let lower = u64::from(self.int()?);
            usize::try_from((upper << 32) | lower)
                .map_err(|_| RdsError::Malformed("a vector is too long".to_owned()))?
        } else {
            usize::try_from(length)
                .map_err(|_| RdsError::Malformed(format!("negative length {length}")))?
        };
        // Every element takes at least one byte: a longer claim is a lie, not an allocation.
        if length > self.bytes.len() - self.at {
            return Err(RdsError::Truncated);
        }
        Ok(length)
    }

    fn item(&mut self, depth: usize) -> Result<RValue, RdsError> {
        match self.any(depth)? {
            Read::Value(value) => Ok(value),
            Read::Symbol(name) => Err(RdsError::Malformed(format!(
                "a symbol ({name}) where a value was expected"
            ))),
        }
    }

    fn symbol(&mut self, depth: usize) -> Result<String, RdsError> {
        match self.any(depth)? {
            Read::Symbol(name) => Ok(name),
            Read::Value(_) => Err(RdsError::Malformed(
                "a value where an attribute name was expected".to_owned(),
            )),
        }
    }

    fn any(&mut self, depth: usize) -> Result<Read, RdsError> {
        if depth > MAX_DEPTH {
            return Err(RdsError::Malformed("values nest too deeply".to_owned()));
        }
        let flags = self.int()?;
        let kind = flags & 0xff;
        let has_attributes = flags & HAS_ATTRIBUTES != 0;
        let data = match kind {
            NILVALUE_SXP | NILSXP => return Ok(Read::Value(RValue::new(RData::Null))),
            REFSXP => {
                let mut index = (flags >> 8) as usize;
                if index == 0 {
                    index = self.int()? as usize;
                }
                return self
                    .symbols
                    .get(index.wrapping_sub(1))
                    .map(|name| Read::Symbol(name.clone()))
                    .ok_or_else(|| RdsError::Malformed(format!("reference {index} is unknown")));
            }
            SYMSXP => {
                let name = self.string()?.unwrap_or_default();
                self.symbols.push(name.clone());
                return Ok(Read::Symbol(name));
            }
            LGLSXP => {
                let length = self.length()?;
                let mut items = Vec::with_capacity(length.min(1 << 20));
                for _ in 0..length {
                    items.push(match self.int()? as i32 {
                        NA_INTEGER => None,
                        value => Some(value != 0),
                    });
                }
                RData::Logical(items)
            }
            INTSXP => {
                let length = self.length()?;
                let mut items = Vec::with_capacity(length.min(1 << 20));
                for _ in 0..length {
                    items.push(Some(self.int()? as i32).filter(|value| *value != NA_INTEGER));
                }
                RData::Integer(items)
            }
            REALSXP => RData::Double(self.doubles()?),
            STRSXP => {
                let length = self.length()?;
                let mut items = Vec::with_capacity(length.min(1 << 20));
                for _ in 0..length {
                    let flags = self.int()?;
                    if flags & 0xff != CHARSXP {
                        return Err(RdsError::Malformed(
                            "a character vector holds something other than strings".to_owned(),
                        ));
                    }
                    items.push(self.string_body()?);
                }
                RData::Character(items)
            }
            VECSXP => {
                let length = self.length()?;
                let mut items = Vec::with_capacity(length.min(1 << 20));
                for _ in 0..length {
                    items.push(self.item(depth + 1)?);
                }
                RData::List(items)
            }
            ALTREP_SXP => return self.altrep(depth).map(Read::Value),
            other => return Err(RdsError::Unsupported(other)),
        };
        let attributes = if has_attributes {
            self.pairlist(depth + 1)?
        } else {
            Vec::new()
        };
        Ok(Read::Value(RValue { data, attributes }))
    }

    fn doubles(&mut self) -> Result<Vec<f64>, RdsError> {
        let length = self.length()?;
        let mut items = Vec::with_capacity(length.min(1 << 20));
        for _ in 0..length {
            let bytes = self.take(8)?;
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            items.push(f64::from_be_bytes(word));
        }
        Ok(items)
    }

    /// A `CHARSXP` whose flags come next.
    fn string(&mut self) -> Result<Option<String>, RdsError> {
        let flags = self.int()?;
        if flags & 0xff != CHARSXP {
            return Err(RdsError::Malformed("a symbol without a name".to_owned()));
        }
        self.string_body()
    }

    fn string_body(&mut self) -> Result<Option<String>, RdsError> {
        if self.int()? as i32 == -1 {
            return Ok(None);
        }
        self.at -= 4;
        let length = self.length()?;
        let bytes = self.take(length)?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// A tagged pairlist (attributes), until `NULL`.
    fn pairlist(&mut self, depth: usize) -> Result<Vec<(String, RValue)>, RdsError> {
        let mut items = Vec::new();
        loop {
            let flags = self.int()?;
            match flags & 0xff {
                NILVALUE_SXP | NILSXP => return Ok(items),
                LISTSXP => {}
                other => return Err(RdsError::Unsupported(other)),
            }
            if flags & HAS_ATTRIBUTES != 0 {
                self.pairlist(depth + 1)?;
            }
            let name = if flags & HAS_TAG != 0 {
                self.symbol(depth + 1)?
            } else {
                String::new()
            };
            let value = self.item(depth + 1)?;
            items.push((name, value));
        }
    }

    /// R's compact integer and double sequences and its wrapper objects, expanded.
    fn altrep(&mut self, depth: usize) -> Result<RValue, RdsError> {
        let info = self.pairlist_values(depth + 1)?;
        let class = match info.first() {
            Some(Read::Symbol(name)) => name.clone(),
            _ => {
                return Err(RdsError::Malformed(
                    "an ALTREP object without a class".to_owned(),
                ))
            }
        };
        let state = self.any(depth + 1)?;
        let attributes = match self.any(depth + 1)? {
            Read::Value(RValue {
                data: RData::Null, ..
            }) => Vec::new(),
            _ => {
                return Err(RdsError::Malformed(
                    "ALTREP attributes in an unexpected form".to_owned(),
                ))
            }
        };
        let data = match (class.as_str(), state) {
            (
                kind @ ("compact_intseq" | "compact_realseq"),
                Read::Value(RValue {
                    data: RData::Double(numbers),
                    ..
                }),
            ) if numbers.len() == 3 => {
                let (length, start, step) = (numbers[0], numbers[1], numbers[2]);
                if !(0.0..=1e8).contains(&length) {
                    return Err(RdsError::Malformed(
                        "a compact sequence is too long".to_owned(),
                    ));
                }
                let values = (0..length as i64).map(|index| start + step * index as f64);
                if kind == "compact_intseq" {
                    RData::Integer(values.map(|value| Some(value as i32)).collect())
                } else {
                    RData::Double(values.collect())
                }
            }
            (
                "wrap_integer" | "wrap_real" | "wrap_logical" | "wrap_string" | "wrap_list",
                Read::Value(RValue {
                    data: RData::List(mut parts),
                    ..
                }),
            ) if !parts.is_empty() => {
                let inner = parts.swap_remove(0);
                return Ok(RValue {
                    data: inner.data,
                    attributes: if attributes.is_empty() {
                        inner.attributes
                    } else {
                        attributes
                    },
                });
            }
            _ => {
                return Err(RdsError::Malformed(format!(
                    "the ALTREP class {class} is not supported"
                )))
            }
        };
        Ok(RValue { data, attributes })
    }

    /// An untagged pairlist's values (ALTREP class information).
    fn pairlist_values(&mut self, depth: usize) -> Result<Vec<Read>, RdsError> {
        let mut items = Vec::new();
        loop {
            let flags = self.int()?;
            match flags & 0xff {
                NILVALUE_SXP | NILSXP => return Ok(items),
                LISTSXP => {}
                other => return Err(RdsError::Unsupported(other)),
            }
            if flags & HAS_ATTRIBUTES != 0 {
                self.pairlist(depth + 1)?;
            }
            if flags & HAS_TAG != 0 {
                self.symbol(depth + 1)?;
            }
            items.push(self.any(depth + 1)?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serialize(c(a = 1L), NULL, xdr = TRUE, version = 2)` as R 4.2 writes it, apart from the
    /// writer's version word (bytes 6 to 9), which names the R release.
    const NAMED_INTEGER_FROM_R: &str =
        "580a0000000200040200000203000000020d000000010000000100000402000000010004000900000005\
6e616d65730000001000000001000400090000000161000000fe";

    #[test]
    fn writes_what_r_writes() {
        let value = RValue::new(RData::Integer(vec![Some(1)]))
            .with_attribute("names", RValue::strings(&["a"]));
        let written = hex(&serialize(&value));
        let expected = NAMED_INTEGER_FROM_R;
        assert_eq!(written[..12], expected[..12], "header");
        assert_eq!(written[20..], expected[20..], "body");
    }

    #[test]
    fn round_trips_every_supported_type() {
        let frame = RValue::new(RData::List(vec![
            RValue::new(RData::Double(vec![1024.0, 2048.5])),
            RValue::new(RData::Logical(vec![Some(false), None])),
            RValue::new(RData::Integer(vec![Some(420), None]))
                .with_attribute("class", RValue::strings(&["octmode"])),
            RValue::new(RData::Character(vec![Some("café".to_owned()), None])),
        ]))
        .with_attribute(
            "names",
            RValue::strings(&["size", "isdir", "mode", "uname"]),
        )
        .with_attribute("class", RValue::strings(&["data.frame"]))
        .with_attribute(
            "row.names",
            RValue::strings(&["x/x_1.0.tar.gz", "x/x_1.1.tar.gz"]),
        );
        let list = RValue::new(RData::List(vec![
            frame.clone(),
            frame,
            RValue::new(RData::Null),
        ]))
        .with_attribute("names", RValue::strings(&["x", "y", "z"]));
        let bytes = serialize(&list);
        assert_eq!(deserialize(&bytes).unwrap(), list);
        // The repeated attribute names are written once and then referred to.
        assert_eq!(
            bytes
                .windows(9)
                .filter(|window| window == b"row.names")
                .count(),
            1
        );
    }

    #[test]
    fn reads_format_3_and_compact_sequences() {
        // serialize(1:3, NULL, version = 3): an ALTREP compact_intseq.
        let bytes = unhex(
            "580a000000030004020200030500000000055554462d38000000ee0000000200000001000400090000000e636f6d706163745f696e747365710000000200000001000400090000000462617365000000020000000d000000010000000d000000fe0000000e0000000340080000000000003ff00000000000003ff0000000000000000000fe",
        );
        let value = deserialize(&bytes).unwrap();
        assert_eq!(value.data, RData::Integer(vec![Some(1), Some(2), Some(3)]));
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        assert!(matches!(deserialize(b"RDX2\n"), Err(RdsError::Header(_))));
        assert_eq!(deserialize(b"X\n\0\0"), Err(RdsError::Truncated));
        // A character vector claiming four billion elements.
        let mut lying = unhex("580a000000020004020000020300");
        lying.extend_from_slice(&unhex("00000010"));
        lying.extend_from_slice(&unhex("7fffffff"));
        assert_eq!(deserialize(&lying), Err(RdsError::Truncated));
        // An environment.
        let mut environment = unhex("580a000000020004020000020300");
        environment.extend_from_slice(&unhex("00000004"));
        assert_eq!(deserialize(&environment), Err(RdsError::Unsupported(4)));
        let valid = serialize(&RValue::strings(&["a", "b"]));
        for cut in 0..valid.len() {
            assert!(deserialize(&valid[..cut]).is_err(), "cut at {cut}");
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
            .collect()
    }
}
