// Prints the KV value the worker caches the registry under (src/registry.rs, CachedRegistry):
// {"fetched_at_ms": <now>, "document": "<the file's text>"}. Used to seed local and test KV.
import { readFileSync } from "node:fs";

const [file = "config/repositories.json"] = process.argv.slice(2);
const document = readFileSync(file, "utf8");
JSON.parse(document); // fail here, loudly, rather than seed a broken registry
process.stdout.write(JSON.stringify({ fetched_at_ms: Date.now(), document }));
