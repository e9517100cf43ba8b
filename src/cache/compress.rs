//! The compressors: a whole body at once (the cache's variants) or a stream in pieces, each
//! piece flushed so that what is already known reaches the client (CGI output, large files).
//! Pure code: bytes in, bytes out; no threads, no channels.

use std::io::{self, Write};

use crate::http::encoding::Coding;

/// brotli's window (log2 of bytes), the library's default.
const BROTLI_WINDOW: u32 = 22;
/// brotli's internal buffer.
const BROTLI_BUFFER: usize = 16 * 1024;

/// Compresses a whole body.
pub fn compress(coding: Coding, level: i32, data: &[u8]) -> io::Result<Vec<u8>> {
    if coding == Coding::Zstd {
        // One shot, so the frame records the content size.
        return zstd::bulk::compress(data, level);
    }
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    let mut encoder = Encoder::new(coding, level)?;
    encoder.push(data, false, &mut out)?;
    encoder.finish(&mut out)?;
    Ok(out)
}

/// A compressor for a body that arrives in pieces.
pub enum Encoder {
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

impl Encoder {
    pub fn new(coding: Coding, level: i32) -> io::Result<Encoder> {
        Ok(match coding {
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                level.clamp(0, 11) as u32,
                BROTLI_WINDOW,
            ))),
            Coding::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level)?),
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
        })
    }

    /// Compresses `data`; with `flush`, everything given so far is made decodable now (a
    /// sync flush). Appends the compressed bytes that are ready to `out`.
    pub fn push(&mut self, data: &[u8], flush: bool, out: &mut Vec<u8>) -> io::Result<()> {
        let ready = match self {
            Encoder::Br(w) => {
                w.write_all(data)?;
                if flush {
                    w.flush()?;
                }
                w.get_mut()
            }
            Encoder::Zstd(w) => {
                w.write_all(data)?;
                if flush {
                    w.flush()?;
                }
                w.get_mut()
            }
            Encoder::Gzip(w) => {
                w.write_all(data)?;
                if flush {
                    w.flush()?;
                }
                w.get_mut()
            }
        };
        out.append(ready);
        Ok(())
    }

    /// Ends the stream, appending its last bytes to `out`.
    pub fn finish(self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut rest = match self {
            Encoder::Br(w) => w.into_inner(),
            Encoder::Zstd(w) => w.finish()?,
            Encoder::Gzip(w) => w.finish()?,
        };
        out.append(&mut rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Br => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Coding::Zstd => out = zstd::stream::decode_all(data).unwrap(),
            Coding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    fn sample() -> Vec<u8> {
        (0..2000)
            .flat_map(|i| format!("line {i}: the quick brown fox\n").into_bytes())
            .collect()
    }

    #[test]
    fn whole_bodies_round_trip_and_shrink() {
        let data = sample();
        for coding in Coding::ALL {
            let packed = compress(coding, 5, &data).unwrap();
            assert!(packed.len() < data.len() / 4, "{coding}: {}", packed.len());
            assert_eq!(decode(coding, &packed), data, "{coding}");
        }
    }

    #[test]
    fn each_flushed_piece_is_decodable_so_far() {
        let data = sample();
        for coding in Coding::ALL {
            let mut encoder = Encoder::new(coding, 3).unwrap();
            let mut out = Vec::new();
            encoder.push(&data[..1000], true, &mut out).unwrap();
            // What has been flushed already decodes to the first piece.
            let mut partial = Vec::new();
            match coding {
                Coding::Gzip => {
                    let _ = flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut partial);
                }
                Coding::Br => {
                    let _ = brotli::Decompressor::new(&out[..], 4096).read_to_end(&mut partial);
                }
                Coding::Zstd => {
                    let mut d = zstd::stream::read::Decoder::new(&out[..]).unwrap();
                    let _ = d.read_to_end(&mut partial);
                }
            }
            assert_eq!(partial, &data[..1000], "{coding}");
            encoder.push(&data[1000..], true, &mut out).unwrap();
            encoder.finish(&mut out).unwrap();
            assert_eq!(decode(coding, &out), data, "{coding}");
        }
    }
}
