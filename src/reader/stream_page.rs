//! A page of a reader as it crosses into JS (`nextPage()`'s value).

use napi::bindgen_prelude::{Either, Float64Array, Uint32Array, Uint8Array};
use napi_derive::napi;

use super::page::Page;

/// One page of chunks, in columns: their seqs, and their texts joined into one string,
/// chunk `i` ending at UTF-16 offset `ends[i]`. One string and two arrays cross into JS for
/// a whole page, instead of an object or a string per chunk; `lib/stream-store.cjs` slices
/// the chunks out (V8 shares the text for longer slices) and yields the objects.
#[napi(object)]
pub struct StreamPage {
    pub seqs: Either<Vec<u32>, Uint32Array>,
    pub text: String,
    pub ends: Either<Vec<u32>, Uint32Array>,
    /// While the delivery lag is measured, for a page this process knew: how long ago
    /// each chunk was committed, in ms, as the page was made (NaN: not known)...
    pub ages: Option<Float64Array>,
    /// ...and whether that time came through a NOTIFY (1: another clock's) or from an
    /// append in this process (0).
    pub heard: Option<Uint8Array>,
}

/// A page's numbers: a plain array for a few (a live reader's page of one chunk), a typed
/// array over Rust's memory for many. A typed array costs V8 a finalizer to run later,
/// which for one number costs more than the array's whole making.
type Column = Either<Vec<u32>, Uint32Array>;

/// Up to this many numbers cross as a plain array.
const PLAIN_COLUMN: usize = 16;

fn column(values: Vec<u32>) -> Column {
    if values.len() <= PLAIN_COLUMN {
        Either::A(values)
    } else {
        Either::B(Uint32Array::new(values))
    }
}

impl From<Page> for StreamPage {
    fn from(page: Page) -> Self {
        StreamPage {
            seqs: column(page.seqs),
            text: page.text,
            ends: column(page.ends),
            ages: None,
            heard: None,
        }
    }
}

pub(super) fn empty_page() -> StreamPage {
    Page::default().into()
}
