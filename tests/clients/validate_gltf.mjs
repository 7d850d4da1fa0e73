// Khronos glTF-Validator on one .glb/.gltf: prints its report (JSON) on stdout.
//   node validate_gltf.mjs FILE
import { readFileSync } from 'node:fs';
import validator from 'gltf-validator';

const file = process.argv[2];
const report = await validator.validateBytes(new Uint8Array(readFileSync(file)), {
  maxIssues: 200,
  externalResourceFunction: () => Promise.reject(new Error('external resources are not allowed')),
});
process.stdout.write(JSON.stringify(report));
