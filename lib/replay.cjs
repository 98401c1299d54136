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
 * Yields the stream's pages after `cursor.after` (each `{ seqs, datas }`: chunk i is
 * `{ seq: seqs[i], data: datas[i] }`) while the case is plain, and moves
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
 * What the page statement for the chunks after `after` returned (`rows`: its rows as the
 * client gives them, `{ seq, data }` each): the page's chunks, in order from `after + 1`
 * without a gap (up to the first large chunk, whose text the statement leaves out), their
 * seqs and texts as they came (no copy); with the stream's state and count (`state` null:
 * no such stream). `plain`: the page was read whole. Anything but rows (a failed
 * statement's outcome) goes to `fail(outcome)`. `null`: nothing this file reads (a failed
 * statement, a count gone back, a gap, rows out of order, a value of another type): the
 * native reader takes over.
 */
function pageOf(rows, after, fail) {
  if (!Array.isArray(rows)) {
    fail(rows); // throws the store's error, unless the native reader is to try again
    return null;
  }
  let state = null;
  let total = 0;
  /** @type {number[]} */
  const seqs = [];
  /** @type {string[]} */
  const datas = [];
  let plain = true;
  for (const row of rows) {
    if (row === null || typeof row !== "object") return null;
    const { seq, data } = row;
    if (seq === null || seq === undefined) {
      // The status row: "<state> <total_chunks>".
      if (typeof data !== "string") return null;
      const space = data.indexOf(" ");
      state = data.slice(0, space);
      total = Number(data.slice(space + 1));
      continue;
    }
    if (!plain) continue;
    const n = typeof seq === "number" ? seq : Number(seq); // some drivers give int4 as text
    if (n !== after + seqs.length + 1) return null; // out of order, a gap, or not a number
    if (data === null || data === undefined) {
      plain = false; // a large chunk: the native reader reads it alone
      continue;
    }
    if (typeof data !== "string") return null;
    seqs.push(n);
    datas.push(data);
  }
  if (state === null) return { seqs: [], datas, state, total, plain };
  if (!Number.isInteger(total) || total < after) return null;
  if (plain && seqs.length === 0 && total > after) return null; // a gap
  return { seqs, datas, state, total, plain };
}

module.exports = { replay, pageOf };
