/**
 * Stream sequence numbers. DynamoDB's are decimal strings of up to 40 digits, far beyond
 * Number's 2^53, and not all of one length; they are compared as digit strings, never parsed.
 */

/** A sequence in canonical form: digits only, no leading zeros ("0" for zero). */
export type Sequence = string & { readonly __sequence: unique symbol };

const DIGITS = /^\d+$/;

/**
 * The canonical form of a wire `sequence`, or null when there is none or it is not a
 * non-negative integer (such an update is then applied in arrival order, like the seed's).
 */
export function parseSequence(value: unknown): Sequence | null {
  if (typeof value === 'number') {
    // Only exact integers: a float or an unsafe integer has already lost digits.
    return Number.isSafeInteger(value) && value >= 0 ? (String(value) as Sequence) : null;
  }
  if (typeof value !== 'string') return null;
  const text = value.trim();
  if (!DIGITS.test(text)) return null;
  return (text.replace(/^0+(?=\d)/, '') as Sequence);
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareSequences(a: Sequence, b: Sequence): number {
  // Canonical forms have no leading zeros, so the longer one is the larger.
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
