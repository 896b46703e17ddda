# The billing engine's worker and API (one image; docker-compose.yml picks the command).
# Runs TypeScript directly with tsx (a runtime dependency), as `npm run worker` / `npm run api` do.
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so code changes do not invalidate the npm ci layer. Development dependencies
# (TypeScript, Jest, ESLint) are not needed to run.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .

# Nothing is written under /app at run time: with DATABASE_URL and TEMPORAL_ADDRESS set, no embedded
# PostgreSQL or dev server (and no .data folder) is used.
USER node
EXPOSE 3000
CMD ["npm", "run", "api"]
