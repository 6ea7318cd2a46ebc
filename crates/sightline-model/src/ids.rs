use std::fmt;
use std::str::FromStr;

/// Why a byte string or hex text is not a valid trace or span id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id has the wrong number of bytes.
    #[error("{what} must be {expected} bytes, got {got}")]
    Length {
        /// "trace id" or "span id".
        what: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Length seen.
        got: usize,
    },
    /// The id is all zeros, which W3C trace context and OTLP call invalid.
    #[error("{what} is all zeros")]
    Zero {
        /// "trace id" or "span id".
        what: &'static str,
    },
    /// The text is not hexadecimal.
    #[error("{what} is not hex: {text:?}")]
    NotHex {
        /// "trace id" or "span id".
        what: &'static str,
        /// The offending text, truncated to 64 characters.
        text: String,
    },
}

macro_rules! id_type {
    ($name:ident, $len:expr, $what:expr, $doc:expr) => {
        #[doc = $doc]
        ///
        /// Invariant: never all zeros (constructors reject it).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Builds an id from raw bytes, rejecting wrong lengths and all zeros.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    what: $what,
                    expected: $len,
                    got: bytes.len(),
                })?;
                Self::from_bytes(arr)
            }

            /// Builds an id from an array, rejecting all zeros.
            pub fn from_bytes(bytes: [u8; $len]) -> Result<Self, IdError> {
                if bytes.iter().all(|b| *b == 0) {
                    return Err(IdError::Zero { what: $what });
                }
                Ok(Self(bytes))
            }

            /// The raw bytes, big-endian as on the wire.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hex, the form W3C trace context and Jaeger use.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            /// Parses case-insensitive hex. Shorter input is left-padded with
            /// zeros, as Jaeger accepts trace ids without leading zeros.
            fn from_str(s: &str) -> Result<Self, IdError> {
                let not_hex = || IdError::NotHex { what: $what, text: s.chars().take(64).collect() };
                if s.is_empty() || s.len() > $len * 2 {
                    return Err(if s.bytes().all(|b| b.is_ascii_hexdigit()) {
                        IdError::Length { what: $what, expected: $len, got: s.len().div_ceil(2) }
                    } else {
                        not_hex()
                    });
                }
                let mut padded = [b'0'; $len * 2];
                padded[$len * 2 - s.len()..].copy_from_slice(s.as_bytes());
                let mut out = [0u8; $len];
                hex::decode_to_slice(padded, &mut out).map_err(|_| not_hex())?;
                Self::from_bytes(out)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

id_type!(TraceId, 16, "trace id", "A 16-byte W3C trace id.");
id_type!(SpanId, 8, "span id", "An 8-byte W3C span id.");
