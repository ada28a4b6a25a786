//! Text in and out: `read_text` (globs, blocks split at line boundaries, gzip, UTF-8 checks),
//! string operations that borrow instead of allocating, and `to_textfiles`.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::split::for_each_word;
use super::{Bag, Flow, Halt, Part, Run, TextRun, halt_error};
use crate::cluster::Cluster;
use crate::error::{Error, Result, TaskFailure};
use crate::graph::{Delayed, user_error};

/// Where [`Bag::read_text`] reads: glob patterns, directories (every file directly inside,
/// sorted by name) or files, one or several.
///
/// Made from a `&str`, `String`, `&Path` or `PathBuf`, or a `Vec` or slice of them. A text
/// that names an existing path is taken literally; otherwise it is a glob (`*`, `?`, `[..]`,
/// and `**` for any depth).
#[derive(Debug, Clone)]
pub struct TextSource(Vec<PathBuf>);

impl From<&str> for TextSource {
    fn from(s: &str) -> Self {
        TextSource(vec![PathBuf::from(s)])
    }
}
impl From<String> for TextSource {
    fn from(s: String) -> Self {
        TextSource(vec![PathBuf::from(s)])
    }
}
impl From<&String> for TextSource {
    fn from(s: &String) -> Self {
        TextSource(vec![PathBuf::from(s)])
    }
}
impl From<&Path> for TextSource {
    fn from(p: &Path) -> Self {
        TextSource(vec![p.to_path_buf()])
    }
}
impl From<PathBuf> for TextSource {
    fn from(p: PathBuf) -> Self {
        TextSource(vec![p])
    }
}
impl From<&PathBuf> for TextSource {
    fn from(p: &PathBuf) -> Self {
        TextSource(vec![p.clone()])
    }
}
impl<P: AsRef<Path>> From<Vec<P>> for TextSource {
    fn from(v: Vec<P>) -> Self {
        TextSource(v.iter().map(|p| p.as_ref().to_path_buf()).collect())
    }
}
impl<P: AsRef<Path>> From<&[P]> for TextSource {
    fn from(v: &[P]) -> Self {
        TextSource(v.iter().map(|p| p.as_ref().to_path_buf()).collect())
    }
}

/// How [`Bag::read_text_with`] reads: block size and UTF-8 policy.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TextOptions {
    block_size: Option<u64>,
    lossy: bool,
}

/// Smallest and largest default block: the default is a quarter of the memory budget per
/// thread, within these bounds.
const MIN_BLOCK: u64 = 1 << 20;
const MAX_BLOCK: u64 = 64 << 20;

impl TextOptions {
    /// The defaults: blocks sized from the cluster's memory budget, invalid UTF-8 an error.
    pub fn new() -> Self {
        Self::default()
    }

    /// Splits files larger than `bytes` into blocks of about `bytes` (one partition each).
    /// The default is `memory budget / (4 x threads)`, between 1 MiB and 64 MiB, so that the
    /// blocks being processed at once stay well within the budget.
    pub fn block_size(mut self, bytes: u64) -> Self {
        self.block_size = Some(bytes);
        self
    }

    /// Replaces invalid UTF-8 by U+FFFD instead of failing.
    pub fn lossy(mut self, lossy: bool) -> Self {
        self.lossy = lossy;
        self
    }
}

/// The block size `read_text` uses on `cluster` when none is given.
pub(crate) fn default_block_size(cluster: &Cluster) -> u64 {
    let per_thread = cluster.plan().memory_limit / (4 * cluster.threads().max(1) as u64);
    per_thread.clamp(MIN_BLOCK, MAX_BLOCK)
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files a source names, in order; an error names the first path or pattern that fails.
fn resolve(source: &TextSource) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in &source.0 {
        let text = entry.to_string_lossy();
        let meta = std::fs::metadata(entry);
        match meta {
            Ok(m) if m.is_dir() => {
                let mut inside = Vec::new();
                for e in std::fs::read_dir(entry).map_err(|e| Error::io(entry, e))? {
                    let e = e.map_err(|e| Error::io(entry, e))?;
                    let p = e.path();
                    if std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
                        inside.push(p);
                    }
                }
                if inside.is_empty() {
                    return Err(Error::Invalid(format!(
                        "{}: the directory has no files to read",
                        entry.display()
                    )));
                }
                inside.sort();
                files.extend(inside);
            }
            Ok(_) => files.push(entry.clone()),
            Err(e) if !is_glob(&text) => return Err(Error::io(entry, e)),
            Err(_) => {
                let paths = glob::glob(&text)
                    .map_err(|e| Error::config("glob pattern", &text, e.to_string()))?;
                let mut matched = Vec::new();
                for p in paths {
                    let p = p.map_err(|e| {
                        let path = e.path().to_path_buf();
                        Error::io(path, e.into())
                    })?;
                    if p.is_file() {
                        matched.push(p);
                    }
                }
                if matched.is_empty() {
                    return Err(Error::Invalid(format!("no file matches the glob `{text}`")));
                }
                files.extend(matched);
            }
        }
    }
    if files.is_empty() {
        return Err(Error::Invalid("read_text was given no path".into()));
    }
    Ok(files)
}

/// `bytes` (read from `path` at `offset`) as text: invalid UTF-8 is an error naming the file
/// and the offset of the first bad byte, or replaced when `lossy`.
fn decode<'a>(
    bytes: &'a [u8],
    lossy: bool,
    path: &Path,
    offset: u64,
) -> std::result::Result<std::borrow::Cow<'a, str>, Halt> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(std::borrow::Cow::Borrowed(s)),
        Err(_) if lossy => Ok(String::from_utf8_lossy(bytes)),
        Err(e) => Err(halt_error(Error::Invalid(format!(
            "{}: invalid UTF-8 at byte {} (TextOptions::lossy(true) replaces bad bytes)",
            path.display(),
            offset + e.valid_up_to() as u64
        )))),
    }
}

/// Bytes a block is read in at a time: each piece of whole lines goes to the consumer while it
/// is still in cache, and one buffer serves the whole block.
const PIECE: usize = 1 << 20;

/// Hands `sink` the lines that start in `start..end` of `path`, in pieces of whole lines (read
/// `piece` bytes at a time): from the first line start at or after `start` through the end of
/// the last line starting before `end` (read on past `end` to its newline or the end of the
/// file). Invalid UTF-8 is an error naming the file offset, or replaced when `lossy`.
fn read_lines(
    path: &Path,
    (start, end): (u64, u64),
    lossy: bool,
    piece: usize,
    sink: &mut dyn FnMut(&str) -> Flow,
) -> Flow {
    let io_err = |e: io::Error| halt_error(Error::io(path, e));
    let mut f = File::open(path).map_err(io_err)?;
    let from = start.saturating_sub(1);
    f.seek(SeekFrom::Start(from)).map_err(io_err)?;
    // `buf` holds the file's bytes from offset `at`; `skipping` until the first line start.
    let mut buf: Vec<u8> = Vec::with_capacity(piece + 4096);
    let mut at = from;
    let mut skipping = start > 0;
    let mut eof = false;
    loop {
        if !eof {
            // Appended to what is kept; fewer bytes than asked for: the end of the file.
            let n = (&mut f)
                .take(piece as u64)
                .read_to_end(&mut buf)
                .map_err(io_err)?;
            eof = n < piece;
        }
        if skipping {
            match buf.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    buf.drain(..=p);
                    at += p as u64 + 1;
                    skipping = false;
                }
                None if eof => return Ok(()),
                None => {
                    // The middle of a long line: none of it is ours.
                    at += buf.len() as u64;
                    buf.clear();
                    if at >= end {
                        return Ok(());
                    }
                    continue;
                }
            }
        }
        if at >= end {
            return Ok(());
        }
        // The newline ending the last line that starts before `end`, if read yet: the rest
        // of the block is up to it.
        let last = (end - at - 1) as usize;
        let cut = match buf
            .get(last..)
            .and_then(|t| t.iter().position(|&b| b == b'\n'))
        {
            Some(p) => Some(last + p + 1),
            None if eof => Some(buf.len()),
            None => None,
        };
        let (upto, done) = match cut {
            Some(c) => (c, true),
            // Whole lines so far, the partial last one kept for the next read.
            None => match buf.iter().rposition(|&b| b == b'\n') {
                Some(p) => (p + 1, false),
                None => (0, false),
            },
        };
        if upto > 0 {
            sink(&decode(&buf[..upto], lossy, path, at)?)?;
        }
        if done {
            return Ok(());
        }
        buf.drain(..upto);
        at += upto as u64;
    }
}

/// A partition reading one block of a plain text file: hands out the block's lines, a piece
/// of whole lines at a time.
fn block_run(path: Arc<Path>, start: u64, end: u64, lossy: bool) -> TextRun {
    Arc::new(move |sink: &mut dyn FnMut(&str) -> Flow| {
        read_lines(&path, (start, end), lossy, PIECE, sink)
    })
}

/// A partition streaming the lines of a gzip file (its offsets are into the decompressed text).
fn gzip_run(path: Arc<Path>, lossy: bool) -> TextRun {
    Arc::new(move |sink: &mut dyn FnMut(&str) -> Flow| {
        let io_err = |e: io::Error| halt_error(Error::io(&*path, e));
        let file = File::open(&path).map_err(io_err)?;
        let mut reader = BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(BufReader::new(file)),
        );
        let mut line = Vec::new();
        let mut offset = 0u64;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io_err)?;
            if n == 0 {
                return Ok(());
            }
            let text = decode(&line, lossy, &path, offset)?;
            sink(text.lines().next().unwrap_or(""))?;
            offset += n as u64;
        }
    })
}

fn is_gzip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

impl Bag<String> {
    /// A bag of the lines (without their `\n` or `\r\n`) of the files `source` names: a glob,
    /// a directory, a file or a list of them. See [`read_text_with`](Bag::read_text_with).
    ///
    /// ```no_run
    /// use onebox::prelude::*;
    /// let cluster = Cluster::local()?;
    /// let lines = Bag::read_text(&cluster, "logs/*.log")?;
    /// let errors = lines.filter_str(|l| l.contains("ERROR")).count().compute()?;
    /// # Ok::<(), onebox::Error>(())
    /// ```
    pub fn read_text(cluster: &Cluster, source: impl Into<TextSource>) -> Result<Bag<String>> {
        Self::read_text_with(cluster, source, TextOptions::default())
    }

    /// [`read_text`](Bag::read_text) with options. Plain files become one partition per block
    /// of [`TextOptions::block_size`] bytes, split at line boundaries (a block owns the lines
    /// that start in it); `.gz` files are one partition each, decompressed as they stream.
    ///
    /// The paths are resolved now: a path that cannot be read, a glob that matches nothing or
    /// an empty directory is an error naming it. Invalid UTF-8 fails the partition's task with
    /// an error naming the file and the byte offset, unless [`TextOptions::lossy`] is set.
    pub fn read_text_with(
        cluster: &Cluster,
        source: impl Into<TextSource>,
        options: TextOptions,
    ) -> Result<Bag<String>> {
        let block = match options.block_size {
            Some(0) => {
                return Err(Error::config(
                    "block_size",
                    0,
                    "a block holds at least one byte",
                ));
            }
            Some(b) => b,
            None => default_block_size(cluster),
        };
        let files = resolve(&source.into())?;
        let mut parts = Vec::new();
        for path in files {
            let meta = File::open(&path)
                .and_then(|f| f.metadata())
                .map_err(|e| Error::io(&path, e))?;
            let path: Arc<Path> = Arc::from(path.as_path());
            if is_gzip(&path) {
                parts.push(Part::from_text(Vec::new(), gzip_run(path, options.lossy)));
                continue;
            }
            let len = meta.len();
            let mut start = 0;
            loop {
                let end = (start + block).min(len);
                parts.push(Part::from_blocks(
                    Vec::new(),
                    block_run(path.clone(), start, end, options.lossy),
                ));
                start = end;
                if start >= len {
                    break;
                }
            }
        }
        Ok(Bag::with_parts(cluster, parts))
    }

    /// The items as `&str`: borrowed from the block for a bag of lines, else from each item.
    fn text_parts(&self) -> Vec<(Part<String>, TextRun)> {
        self.parts
            .iter()
            .map(|p| {
                let text: TextRun = match &p.text {
                    Some(t) => t.clone(),
                    None => {
                        let run = p.run.clone();
                        Arc::new(move |sink: &mut dyn FnMut(&str) -> Flow| {
                            run(&mut |s: String| sink(&s))
                        })
                    }
                };
                (p.clone(), text)
            })
            .collect()
    }

    fn text_lazy<F>(self, make: F) -> Bag<String>
    where
        F: Fn(TextRun) -> TextRun,
    {
        let parts = self
            .text_parts()
            .into_iter()
            .map(|(p, t)| Part::from_text(p.deps, make(t)))
            .collect();
        self.derive(parts)
    }

    /// Splits every item at whitespace (the pieces of `str::split_whitespace`). On a bag of
    /// lines the words stay borrowed from the block until a terminal operation needs them
    /// owned; on lines read from a plain file, a whole block is split at once (line ends are
    /// whitespace, so its words are its lines' words).
    pub fn words(self) -> Bag<String> {
        let parts = self
            .text_parts()
            .into_iter()
            .map(|(p, lines)| {
                let text = p.blocks.clone().unwrap_or(lines);
                let words: TextRun = Arc::new(move |sink: &mut dyn FnMut(&str) -> Flow| {
                    text(&mut |piece| for_each_word(piece, sink))
                });
                Part::from_text(p.deps, words)
            })
            .collect();
        self.derive(parts)
    }

    /// Replaces every item by the pieces `f` emits for it, as `&str` slices of the item (a
    /// tokenizer that allocates nothing): `f(line, emit)` calls `emit(piece)` for each piece.
    ///
    /// ```
    /// use onebox::prelude::*;
    /// let cluster = Cluster::builder().threads(2).build()?;
    /// let csv = Bag::from_vec(&cluster, vec!["a,b".to_string(), "c".into()], 2)?;
    /// let fields = csv.flat_map_str(|line, emit| line.split(',').for_each(|f| emit(f)));
    /// assert_eq!(fields.compute()?, ["a", "b", "c"]);
    /// # Ok::<(), onebox::Error>(())
    /// ```
    pub fn flat_map_str<F>(self, f: F) -> Bag<String>
    where
        F: Fn(&str, &mut dyn FnMut(&str)) + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.text_lazy(|text| {
            let f = f.clone();
            Arc::new(move |sink: &mut dyn FnMut(&str) -> Flow| {
                text(&mut |line| {
                    let mut halt = None;
                    f(line, &mut |piece| {
                        if halt.is_none()
                            && let Err(h) = sink(piece)
                        {
                            halt = Some(h);
                        }
                    });
                    halt.map_or(Ok(()), Err)
                })
            })
        })
    }

    /// Keeps the items for which `keep` is true, looking at them as `&str`.
    pub fn filter_str<F>(self, keep: F) -> Bag<String>
    where
        F: Fn(&str) -> bool + Send + Sync + 'static,
    {
        let keep = Arc::new(keep);
        self.text_lazy(|text| {
            let keep = keep.clone();
            Arc::new(move |sink: &mut dyn FnMut(&str) -> Flow| {
                text(&mut |line| if keep(line) { sink(line) } else { Ok(()) })
            })
        })
    }

    /// Parses every item as JSON (JSON Lines). A line that does not parse fails its
    /// partition's task with the parser's message and the start of the line.
    pub fn parse_json<D>(self) -> Bag<D>
    where
        D: serde::de::DeserializeOwned + Clone + Send + 'static,
    {
        let parts = self
            .text_parts()
            .into_iter()
            .map(|(p, text)| {
                let run: Run<D> = Arc::new(move |sink: &mut dyn FnMut(D) -> Flow| {
                    text(&mut |line| {
                        let value = serde_json::from_str(line).map_err(|e| {
                            let start: String = line.chars().take(60).collect();
                            halt_error(Error::Invalid(format!("invalid JSON ({e}): {start}")))
                        })?;
                        sink(value)
                    })
                });
                p.then(run)
            })
            .collect();
        self.derive(parts)
    }
}

/// The path of partition `i` of `n` for a `to_textfiles` pattern.
fn output_path(pattern: &str, i: usize, n: usize) -> PathBuf {
    let width = (n.saturating_sub(1)).to_string().len();
    let name = format!("{i:0width$}");
    if pattern.contains('*') {
        PathBuf::from(pattern.replacen('*', &name, 1))
    } else {
        Path::new(pattern).join(format!("{name}.part"))
    }
}

impl<T: Display + Clone + Send + 'static> Bag<T> {
    /// Writes each partition to its own file, one item per line (its `Display`), and returns
    /// the paths. `pattern`'s `*` is replaced by the partition number (zero-padded so that
    /// the names sort); a pattern without `*` is a directory that gets `0.part`, `1.part`, ...
    /// Directories are created; a path ending in `.gz` is gzip-compressed.
    ///
    /// Each file is written to a temporary file beside it and renamed into place when
    /// complete, so a failed run leaves no half-written file: when this returns, every
    /// partition has finished or failed, and the files present are complete. The error is
    /// the first failed partition's.
    pub fn to_textfiles(&self, pattern: &str) -> Result<Vec<PathBuf>> {
        let n = self.npartitions();
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let path = output_path(pattern, i, n);
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            tasks.push(self.part_task(i, "to-textfiles", move |part| {
                write_partition(part, &dir, &path)?;
                Ok(path.clone())
            }));
        }
        // Wait for every partition, even after a failure, so that when this returns no
        // temporary file is left and every file present is complete.
        let handles: Vec<_> = tasks.into_iter().map(Delayed::submit).collect();
        let mut paths = Vec::with_capacity(n);
        let mut failed = None;
        for h in handles {
            match h.result() {
                Ok(p) => paths.push(p),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(paths),
        }
    }
}

/// A file being written, plain or gzip-compressed.
enum Out {
    Plain(io::BufWriter<File>),
    Gz(Box<flate2::write::GzEncoder<io::BufWriter<File>>>),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::Plain(w) => w.write(buf),
            Out::Gz(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Out::Plain(w) => w.write_all(buf),
            Out::Gz(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Plain(w) => w.flush(),
            Out::Gz(w) => w.flush(),
        }
    }
}

impl Out {
    /// Writes everything still buffered (and the gzip trailer).
    fn finish(self) -> io::Result<()> {
        match self {
            Out::Plain(mut w) => w.flush(),
            Out::Gz(w) => w.finish()?.flush(),
        }
    }
}

fn write_partition<T: Display + 'static>(
    part: &Part<T>,
    dir: &Path,
    path: &Path,
) -> std::result::Result<(), TaskFailure> {
    let io = |e: io::Error| user_error(Error::io(path, e));
    let tmp = tempfile::Builder::new()
        .prefix(".onebox-tmp-")
        .tempfile_in(dir)
        .map_err(|e| user_error(Error::io(dir, e)))?;
    let file = tmp.reopen().map_err(io)?;
    let buffered = io::BufWriter::with_capacity(256 * 1024, file);
    let mut out = if is_gzip(path) {
        Out::Gz(Box::new(flate2::write::GzEncoder::new(
            buffered,
            flate2::Compression::default(),
        )))
    } else {
        Out::Plain(buffered)
    };
    let failed = |e: io::Error| Halt::Failed(user_error(Error::io(path, e)));
    let r = match &part.text {
        Some(text) => text(&mut |s| {
            out.write_all(s.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(failed)
        }),
        None => (part.run)(&mut |x| writeln!(out, "{x}").map_err(failed)),
    };
    match r {
        Ok(()) | Err(Halt::Enough) => {}
        // Dropping `tmp` removes the temporary file: nothing half-written stays.
        Err(Halt::Failed(f)) => return Err(f),
    }
    out.finish().map_err(io)?;
    tmp.persist(path)
        .map_err(|e| user_error(Error::io(path, e.error)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The lines of `text` that start in `start..end`, each through its newline (or the end).
    fn lines_starting_in(text: &str, start: usize, end: usize) -> String {
        let mut out = String::new();
        let mut s = 0;
        for line in text.split_inclusive('\n') {
            if s >= start && s < end {
                out.push_str(line);
            }
            s += line.len();
        }
        out
    }

    #[test]
    fn invalid_utf8_is_named_by_its_file_offset_whatever_the_piece() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        let bytes = b"good line\nsecond line\nbad \xff here\nafter\n";
        std::fs::write(&path, bytes).unwrap();
        let offset = bytes.iter().position(|&b| b == 0xff).unwrap();
        for piece in 1..12 {
            let r = read_lines(
                &path,
                (0, bytes.len() as u64),
                false,
                piece,
                &mut |_| Ok(()),
            );
            let message = match r {
                Err(Halt::Failed(e)) => format!("{e:?}"),
                _ => String::from("no error"),
            };
            assert!(
                message.contains(&format!("byte {offset}")),
                "{piece}: {message}"
            );
        }
    }

    proptest! {
        #[test]
        fn a_block_reads_the_lines_starting_in_it_piece_by_piece(
            text in "([a-zé日 ]{0,12}\n){0,12}[a-z]{0,5}",
            a in 0usize..200,
            b in 0usize..200,
            piece in 1usize..9,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.txt");
            std::fs::write(&path, &text).unwrap();
            let (start, end) = (a.min(b).min(text.len()), a.max(b).min(text.len() + 1));
            let mut got = String::new();
            // Only the last piece may end without a newline (the file's unterminated last line).
            let (mut open, mut after_open) = (false, false);
            read_lines(&path, (start as u64, end as u64), false, piece, &mut |t| {
                got.push_str(t);
                after_open |= open;
                open = !t.ends_with('\n');
                Ok(())
            })
            .unwrap_or_else(|_| panic!("the read failed"));
            prop_assert_eq!(&got, &lines_starting_in(&text, start, end));
            prop_assert!(!after_open, "a piece came after one that ended inside a line");
        }
    }
}
