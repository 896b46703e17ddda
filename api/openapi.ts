import { type OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import type { PriceBook } from '../billing/price-book';
import { UsageEvent } from './schemas';

/**
 * Components the routes refer to without embedding them. The usage-events body validates each event on its own
 * (so that one bad event is rejected alone), so its array items are a `$ref` the generator cannot follow.
 */
export function registerReferencedSchemas(registry: OpenAPIRegistry): void {
  registry.register('UsageEvent', UsageEvent);
}

/**
 * The OpenAPI 3.1 document, generated from the routes' schemas, plus what only the running server knows: the
 * models of its price book, as the enum of the `ModelName` component (any other model is a 400 `unknown_model`).
 */
export function openApiDocument(registry: OpenAPIRegistry, priceBook: PriceBook) {
  const document = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'AI billing engine',
      version: '1.0.0',
      description:
        'See API.md for conventions. Every string refuses control characters (400 naming the field); ' +
        'a body must be application/json (415); a known path with another method is a 405 with Allow.',
    },
    servers: [{ url: '/' }],
  });
  const models = [...new Set(priceBook.versions.flatMap((version) => [...version.models.keys()]))].sort();
  const modelName = document.components?.schemas?.ModelName;
  if (modelName && !('$ref' in modelName)) modelName.enum = models;
  return document;
}
