//! Several recordings as one stream: read them in parallel, merge their frames by receive
//! time, and decode each frame straight into its slot of the merged records.

use super::Recording;
use crate::error::{DecodeError, LoadError};
use crate::gzip::gunzip;
use crate::layout::RecordLayout;
use crate::symbol::SymbolCache;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Fewer frames than this per thread are decoded on fewer threads.
const MIN_FRAMES_PER_THREAD: usize = 16_384;

/// A gzip recording on disk and what its records carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFile {
    /// The `.gz` file.
    pub path: PathBuf,
    /// Every record's venue.
    pub venue: String,
    /// The symbol of a REST snapshot line that names none.
    pub symbol_hint: Option<String>,
}

/// Read, gunzip and index `files` on up to `threads` threads (largest files first).
///
/// # Errors
/// The error of the first file, in the order given, that fails.
pub fn read_recordings(files: &[RecordingFile], threads: usize) -> Result<Vec<Recording<'static>>, LoadError> {
    let read = |file: &RecordingFile| -> Result<Recording<'static>, LoadError> {
        let io = |source| LoadError::Io { path: file.path.clone(), source };
        let text = gunzip(&std::fs::read(&file.path).map_err(io)?).map_err(io)?;
        Recording::new(text, &file.venue, file.symbol_hint.as_deref())
            .map_err(|source| LoadError::Decode { path: file.path.clone(), source })
    };
    let mut queue: Vec<usize> = (0..files.len()).collect();
    queue.sort_by_key(|&i| std::cmp::Reverse(std::fs::metadata(&files[i].path).map_or(0, |m| m.len())));
    let results: Vec<Mutex<Option<Result<Recording<'static>, LoadError>>>> =
        files.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(&i) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
            let result = read(&files[i]);
            *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.clamp(1, files.len().max(1)) {
            scope.spawn(work);
        }
        work();
    });
    results
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every file is read"))
        .collect()
}

/// A frame of a [`Replay`] that does not decode, and which recording it is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recording {recording}: {source}")]
pub struct ReplayError {
    /// The recording's index in the replay.
    pub recording: usize,
    /// The error.
    pub source: DecodeError,
}

/// The frames of one or more recordings in the order their records are written.
#[derive(Debug)]
pub struct Replay<'a> {
    recordings: Vec<Recording<'a>>,
    /// (recording, frame) pairs in record order.
    order: Vec<(u32, u32)>,
}

impl<'a> Replay<'a> {
    /// One recording's frames in line order.
    pub fn in_line_order(recording: Recording<'a>) -> Self {
        let order = (0..frame_index(recording.len())).map(|f| (0, f)).collect();
        Self { recordings: vec![recording], order }
    }

    /// The frames of `recordings` merged by receive time. The merge is stable: at equal
    /// times a recording's frames keep their order, and earlier recordings come first (as a
    /// stable sort of the concatenated recordings gives).
    pub fn merged(recordings: Vec<Recording<'a>>) -> Self {
        let mut keyed: Vec<(i64, u32, u32)> = Vec::with_capacity(recordings.iter().map(Recording::len).sum());
        for (r, recording) in recordings.iter().enumerate() {
            let r = frame_index(r);
            keyed.extend(recording.receive_times().zip(0..frame_index(recording.len())).map(|(t, f)| (t, r, f)));
        }
        // A stable sort finds each recording's run of rising times and merges the runs.
        keyed.sort_by_key(|&(t, _, _)| t);
        Self { recordings, order: keyed.into_iter().map(|(_, r, f)| (r, f)).collect() }
    }

    /// How many records the replay writes.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the replay writes no record.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The recordings, in the order given.
    pub fn recordings(&self) -> &[Recording<'a>] {
        &self.recordings
    }

    /// Decode every frame into its record in `out`, ids numbered from 1 in record order, on
    /// up to `threads` threads (each writes one contiguous slice of `out`).
    ///
    /// # Errors
    /// The first frame that does not decode, in recording then line order.
    ///
    /// # Panics
    /// If `out` is not `len() * layout.size` bytes or `layout` fails [`RecordLayout::check`].
    pub fn decode_into(&self, layout: &RecordLayout, out: &mut [u8], threads: usize) -> Result<(), ReplayError> {
        assert_eq!(out.len(), self.len() * layout.size, "output size");
        assert_eq!(layout.check(), Ok(()));
        let templates: Vec<Vec<u8>> = self.recordings.iter().map(|r| layout.template(&r.venue)).collect();
        let threads = threads.clamp(1, self.len().div_ceil(MIN_FRAMES_PER_THREAD).max(1));
        let per_thread = self.len().div_ceil(threads).max(1);
        let run = |chunk: usize, order: &[(u32, u32)], out: &mut [u8]| -> bool {
            let first_id = (chunk * per_thread) as u64 + 1;
            let mut symbols = SymbolCache::default();
            order.iter().zip(out.chunks_exact_mut(layout.size)).zip(first_id..).all(|((&(r, f), record), id)| {
                let recording = &self.recordings[r as usize];
                let frame = &recording.frames[f as usize];
                recording.write(frame, layout, &templates[r as usize], &mut symbols, record, id).is_ok()
            })
        };
        let mut chunks = self.order.chunks(per_thread).zip(out.chunks_mut(per_thread * layout.size)).enumerate();
        let first = chunks.next();
        let ok = std::thread::scope(|scope| {
            let others: Vec<_> =
                chunks.map(|(chunk, (order, out))| scope.spawn(move || run(chunk, order, out))).collect();
            let mine = first.is_none_or(|(chunk, (order, out))| run(chunk, order, out));
            others
                .into_iter()
                .fold(mine, |ok, handle| handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p)) && ok)
        });
        if ok {
            Ok(())
        } else {
            Err(self.first_error(layout, &templates))
        }
    }

    /// The first frame that does not decode, in recording then line order (the error path:
    /// decodes again, one frame at a time).
    #[cold]
    fn first_error(&self, layout: &RecordLayout, templates: &[Vec<u8>]) -> ReplayError {
        let mut scratch = vec![0u8; layout.size];
        let mut symbols = SymbolCache::default();
        for (r, recording) in self.recordings.iter().enumerate() {
            for frame in &recording.frames {
                if let Err(fault) = recording.write(frame, layout, &templates[r], &mut symbols, &mut scratch, 0) {
                    return ReplayError { recording: r, source: recording.line_error(frame, fault) };
                }
            }
        }
        unreachable!("a frame failed to decode once and then decoded")
    }
}

fn frame_index(n: usize) -> u32 {
    u32::try_from(n).expect("fewer than 2**32 frames per recording and recordings per replay")
}
