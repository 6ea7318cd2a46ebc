use crate::map_error_code;

use std::io;
use zstd_safe;

/// Allows to compress independently multiple chunks of data.
///
/// Each job will be processed entirely in-memory without streaming, so this
/// is most fitting for many small jobs. To compress larger volume that don't
/// easily fit in memory, a streaming compression may be more appropriate.
///
/// It is more efficient than a streaming compressor for 2 reasons:
/// * It re-uses the zstd context between jobs to avoid re-allocations
/// * It avoids copying data from a `Read` into a temporary buffer before compression.
#[derive(Default)]
pub struct Compressor<'a> {
    /// `None` while the only setting is the compression level: each call
    /// then uses the calling thread's shared context (see `SHARED`) at
    /// `level`. Any other setting gives this compressor its own context.
    context: Option<zstd_safe::CCtx<'a>>,
    /// The level for the shared context; 0 is zstd's default.
    level: i32,
}

std::thread_local! {
    /// One context per thread, shared by every `Compressor` that has no
    /// settings beyond a level. Creating a context runs `cpuid`, which
    /// traps to the hypervisor on virtual machines (~10 µs); Parquet
    /// creates a codec per column chunk it writes or reads.
    static SHARED: std::cell::RefCell<zstd_safe::CCtx<'static>> =
        std::cell::RefCell::new(zstd_safe::CCtx::create());
}

impl Compressor<'static> {
    /// Creates a new zstd compressor
    pub fn new(level: i32) -> io::Result<Self> {
        Self::with_dictionary(level, &[])
    }

    /// Creates a new zstd compressor, using the given dictionary.
    ///
    /// Note that using a dictionary means that decompression will need to use
    /// the same dictionary.
    pub fn with_dictionary(level: i32, dictionary: &[u8]) -> io::Result<Self> {
        let mut compressor = Self::default();

        compressor.set_dictionary(level, dictionary)?;

        Ok(compressor)
    }
}

impl<'a> Compressor<'a> {
    /// Creates a new compressor using an existing `EncoderDictionary`.
    ///
    /// The compression level will be the one specified when creating the dictionary.
    ///
    /// Note that using a dictionary means that decompression will need to use
    /// the same dictionary.
    pub fn with_prepared_dictionary<'b>(
        dictionary: &'a crate::dict::EncoderDictionary<'b>,
    ) -> io::Result<Self>
    where
        'b: 'a,
    {
        let mut compressor = Self::default();

        compressor.set_prepared_dictionary(dictionary)?;

        Ok(compressor)
    }

    /// Changes the compression level used by this compressor.
    ///
    /// *This will clear any dictionary previously registered.*
    ///
    /// If you want to keep the existing dictionary, you will need to pass it again to
    /// `Self::set_dictionary` instead of using this method.
    pub fn set_compression_level(&mut self, level: i32) -> io::Result<()> {
        self.set_dictionary(level, &[])
    }

    /// Changes the dictionary and compression level used by this compressor.
    ///
    /// Will affect future compression jobs.
    ///
    /// Note that using a dictionary means that decompression will need to use
    /// the same dictionary.
    pub fn set_dictionary(
        &mut self,
        level: i32,
        dictionary: &[u8],
    ) -> io::Result<()> {
        self.level = level;
        if dictionary.is_empty() && self.context.is_none() {
            return Ok(());
        }
        self.context_mut()
            .set_parameter(zstd_safe::CParameter::CompressionLevel(level))
            .map_err(map_error_code)?;

        self.context_mut()
            .load_dictionary(dictionary)
            .map_err(map_error_code)?;

        Ok(())
    }

    /// Changes the dictionary used by this compressor.
    ///
    /// The compression level used when preparing the dictionary will be used.
    ///
    /// Note that using a dictionary means that decompression will need to use
    /// the same dictionary.
    pub fn set_prepared_dictionary<'b>(
        &mut self,
        dictionary: &'a crate::dict::EncoderDictionary<'b>,
    ) -> io::Result<()>
    where
        'b: 'a,
    {
        self.context_mut()
            .ref_cdict(dictionary.as_cdict())
            .map_err(map_error_code)?;

        Ok(())
    }

    /// Compress a single block of data to the given destination buffer.
    ///
    /// Returns the number of bytes written, or an error if something happened
    /// (for instance if the destination buffer was too small).
    ///
    /// A level of `0` uses zstd's default (currently `3`).
    /// [`crate::compress_bound()`] says how large `destination` might need to
    /// be. For a `Vec` it is the *capacity* that bounds the output, so
    /// `reserve` what you need rather than `resize` - the bytes do not have to
    /// be initialized first.
    pub fn compress_to_buffer<C: zstd_safe::WriteBuf + ?Sized>(
        &mut self,
        source: &[u8],
        destination: &mut C,
    ) -> io::Result<usize> {
        let level = self.level;
        match &mut self.context {
            Some(context) => context.compress2(destination, source),
            None => SHARED.with(|shared| {
                let mut shared = shared.borrow_mut();
                shared.set_parameter(
                    zstd_safe::CParameter::CompressionLevel(level),
                )?;
                shared.compress2(destination, source)
            }),
        }
        .map_err(map_error_code)
    }

    /// Compresses a block of data and returns the compressed result.
    ///
    /// A level of `0` uses zstd's default (currently `3`).
    pub fn compress(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        // We allocate a big buffer, slightly larger than the input data.
        let buffer_len = zstd_safe::compress_bound(data.len());
        let mut buffer = Vec::with_capacity(buffer_len);

        self.compress_to_buffer(data, &mut buffer)?;

        // Should we shrink the vec? Meh, let the user do it if he wants.
        Ok(buffer)
    }

    /// Gives mutable access to the internal context.
    pub fn context_mut(&mut self) -> &mut zstd_safe::CCtx<'a> {
        let level = self.level;
        self.context.get_or_insert_with(|| {
            let mut context = zstd_safe::CCtx::create();
            // A fresh context accepts any level zstd knows; the level was
            // checked when it was set on the shared context path.
            let _ = context.set_parameter(
                zstd_safe::CParameter::CompressionLevel(level),
            );
            context
        })
    }

    /// Sets a compression parameter for this compressor.
    pub fn set_parameter(
        &mut self,
        parameter: zstd_safe::CParameter,
    ) -> io::Result<()> {
        self.context_mut()
            .set_parameter(parameter)
            .map_err(map_error_code)?;
        Ok(())
    }

    /// Sets the expected size of the input.
    ///
    /// This affects the compression effectiveness.
    ///
    /// It is an error to give an incorrect size (an error will be returned when closing the
    /// stream if the size does not match what was pledged).
    ///
    /// Giving a `None` size means the size is unknown (this is the default).
    pub fn set_pledged_src_size(
        &mut self,
        size: Option<u64>,
    ) -> io::Result<()> {
        self.context_mut()
            .set_pledged_src_size(size)
            .map_err(map_error_code)?;
        Ok(())
    }

    crate::encoder_parameters!();
}

fn _assert_traits() {
    fn _assert_send<T: Send>(_: T) {}

    _assert_send(Compressor::new(0));
}
