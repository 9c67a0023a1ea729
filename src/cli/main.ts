#!/usr/bin/env node
// Placeholder entry; the CLI work replaces it.
console.log('virtlab');
