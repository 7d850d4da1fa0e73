// Read an export with three.js's own loaders (GLTFLoader, FBXLoader, BVHLoader) under node and print
// what a three.js game would see, as JSON on stdout:
//   node read_with_three.mjs FILE [TIMES]     TIMES: comma-separated seconds to sample (default none)
// {format, bones: [{name, parent, rest: [x,y,z], bind: [x,y,z] | null}],
//  clips: [{name, duration, tracks: [{name, count, first, last}]}],
//  samples: [{time, joints: {bone: [x,y,z]}}]}
// rest: world position of each bone with the file's node defaults (nothing played); bind: from the
// skin's bind matrices (skinned meshes only); samples: world positions with every clip playing at once.
import { readFileSync } from 'node:fs';
import * as THREE from 'three';
import { GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';
import { FBXLoader } from 'three/examples/jsm/loaders/FBXLoader.js';
import { BVHLoader } from 'three/examples/jsm/loaders/BVHLoader.js';

const [file, timesArg] = process.argv.slice(2);
const times = timesArg ? timesArg.split(',').filter((t) => t !== '').map(Number) : [];
const extension = file.split('.').pop().toLowerCase();
const bytes = readFileSync(file);
const arrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);

async function load() {
  if (extension === 'glb' || extension === 'gltf') {
    const gltf = await new Promise((resolve, reject) => new GLTFLoader().parse(arrayBuffer, '', resolve, reject));
    return { root: gltf.scene, clips: gltf.animations };
  }
  if (extension === 'fbx') {
    const group = new FBXLoader().parse(arrayBuffer, '');
    return { root: group, clips: group.animations };
  }
  if (extension === 'bvh') {
    const result = new BVHLoader().parse(bytes.toString('utf8'));
    const root = new THREE.Group();
    root.add(result.skeleton.bones[0]);
    return { root, clips: [result.clip] };
  }
  throw new Error(`unknown extension ${extension}`);
}

function bonesOf(root) {
  const bones = [];
  // BVHLoader turns every End Site into a bone called ENDSITE: not a joint, left out.
  root.traverse((object) => { if (object.isBone && !(extension === 'bvh' && object.name === 'ENDSITE')) bones.push(object); });
  if (bones.length) return bones;
  root.traverse((object) => { if (object !== root && !object.isMesh && !object.isLine) bones.push(object); });
  return bones;
}

// Positions in the file's own frame: FBXLoader turns a Z-up file to three's Y-up by rotating the
// loaded root, which is undone here so every reader reports the file's axes.
function worldPositions(root, bones) {
  root.updateMatrixWorld(true);
  const toFile = root.matrixWorld.clone().invert();
  const out = {};
  for (const bone of bones) out[bone.name] = bone.getWorldPosition(new THREE.Vector3()).applyMatrix4(toFile).toArray();
  return out;
}

const { root, clips } = await load();
const bones = bonesOf(root);
const rest = worldPositions(root, bones);
const bind = {};
root.traverse((object) => {
  if (!object.isSkinnedMesh) return;
  const skeleton = object.skeleton;
  skeleton.bones.forEach((bone, index) => {
    const matrix = new THREE.Matrix4().copy(skeleton.boneInverses[index]).invert();
    matrix.premultiply(object.bindMatrix.clone().invert()).premultiply(object.matrixWorld)
      .premultiply(root.matrixWorld.clone().invert());
    bind[bone.name] = new THREE.Vector3().setFromMatrixPosition(matrix).toArray();
  });
});
const mixer = new THREE.AnimationMixer(root);
for (const clip of clips) mixer.clipAction(clip).play();
const samples = times.map((time) => {
  mixer.setTime(time);
  return { time, joints: worldPositions(root, bones) };
});
const report = {
  format: extension,
  bones: bones.map((bone) => ({
    name: bone.name,
    parent: bone.parent && bone.parent !== root ? bone.parent.name : null,
    rest: rest[bone.name],
    bind: bind[bone.name] || null,
  })),
  clips: clips.map((clip) => ({
    name: clip.name,
    duration: clip.duration,
    tracks: clip.tracks.map((track) => ({
      name: track.name, count: track.times.length, first: track.times[0], last: track.times[track.times.length - 1],
    })),
  })),
  samples,
};
process.stdout.write(JSON.stringify(report));
