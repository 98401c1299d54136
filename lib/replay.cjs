// A JS client's reader reads what is already stored here, in JS: the same page statement
// as the native reader (src/sql/stream.rs), sent through the same driver (lib/driver.cjs),
// its rows sliced straight into chunks. Through the native reader each page crosses
// into Rust and back; here it does not, which is what makes replaying a long stream over
// a pg.Pool faster than the original package.
//
// Only the plain case is read here: pages of chunks with their texts, from a stream that
// exists and has not gone back. At anything else (a large chunk, a gap, a failed
// statement, the end of a live stream) the reader goes on in the native reader from the
// cursor reached, which handles it all; a reader is only a cursor, so nothing is missed
// or repeated.
"use strict";

/**
 * Yields the stream's pages after `cursor.after` (each `{ seqs, text, starts, ends }`:
 * chunk i is `text.slice(starts[i], ends[i])`) while the case is plain, and moves
 * `cursor.after` past each page once it is handed out. Sets `cursor.ended` when the
 * stream finished there (or does not exist): the reader is done.
 *
 * `page(after)` runs the page statement for the chunks in (after, after + rows] and
 * resolves `pageOf` its outcome. `rows` is the most chunks a page asks for.
 */
async function* replay(page, cursor, rows) {
  let next = page(cursor.after);
  for (;;) {
    const read = await next;
    if (read === null) return;
    if (read.state === null) {
      cursor.ended = true; // no such stream
      return;
    }
    const { seqs, state, total, plain } = read;
    const last = seqs.length > 0 ? seqs[seqs.length - 1] : cursor.after;
    const more = plain && last < total && seqs.length === rows;
    // The next page is read while this one is handed out.
    next = more ? page(last) : null;
    next?.catch(() => {}); // awaited above, unless the reader is left first
    if (seqs.length > 0) yield read;
    cursor.after = last;
    cursor.total = total;
    if (state !== "active" && plain && last >= total) {
      cursor.ended = true;
      return;
    }
    if (!more) return;
  }
}

/**
 * What the driver's `outcome` of the page statement for the chunks after `after` (its
 * `seq:i,data:t` columns) holds: the page's chunks, in order from `after + 1` without a gap (up to the first large chunk,
 * whose text the statement leaves out): their seqs and where each one's text starts and
 * ends in `text` (the page's texts joined, as the driver gives them); with the stream's
 * state and count (`state` null: no such stream). `plain`: the page was read whole.
 * `fail(outcome)` is called with a failed statement's outcome. `null`: nothing this file
 * reads (a failed statement, a count gone back, a gap, rows out
 * of order): the native reader takes over.
 */
function pageOf(outcome, after, fail) {
  if (outcome === null || typeof outcome !== "object" || !Array.isArray(outcome.columns)) {
    fail(outcome); // throws the store's error, unless the native reader is to try again
    return null;
  }
  if (outcome.notAnObject !== undefined) return null;
  const seqColumn = outcome.columns[0]?.ints;
  const lengths = outcome.columns[1]?.lengths;
  const text = outcome.columns[1]?.text;
  if (!seqColumn || !lengths || typeof text !== "string") return null;
  let state = null;
  let total = 0;
  /** @type {number[]} */
  const seqs = [];
  /** @type {number[]} */
  const starts = [];
  /** @type {number[]} */
  const ends = [];
  let plain = true;
  let offset = 0; // where the current row's text starts in `text`
  for (let row = 0; row < outcome.rows; row++) {
    const length = lengths[row];
    const start = offset;
    if (length > 0) offset += length;
    if (Number.isNaN(seqColumn[row])) {
      // The status row: "<state> <total_chunks>".
      const status = text.slice(start, offset);
      const space = status.indexOf(" ");
      state = status.slice(0, space);
      total = Number(status.slice(space + 1));
      continue;
    }
    if (!plain) continue;
    if (seqColumn[row] !== after + seqs.length + 1) return null; // out of order, or a gap
    if (length < 0) {
      plain = false; // a large chunk: the native reader reads it alone
      continue;
    }
    seqs.push(seqColumn[row]);
    starts.push(start);
    ends.push(offset);
  }
  if (state === null) return { seqs: [], text, starts, ends, state, total, plain };
  if (!Number.isInteger(total) || total < after) return null;
  if (plain && seqs.length === 0 && total > after) return null; // a gap
  return { seqs, text, starts, ends, state, total, plain };
}

module.exports = { replay, pageOf };
