import defaultVersionJson from '../../billing/prices/2026-11-01.json';

/** A price book document as plain JSON, for tests that edit one field and parse it again. */
export type Json = Record<string, unknown>;

/** A deep copy of the bundled price book file that a test may break. */
export function bundledDocument(): Json {
  return structuredClone(defaultVersionJson) as Json;
}

/** Walks a copied document to the object at `path`, for tests that edit one field of it. */
export function at(document: Json, ...path: string[]): Json {
  let node: unknown = document;
  for (const key of path) node = (node as Json)[key];
  return node as Json;
}
