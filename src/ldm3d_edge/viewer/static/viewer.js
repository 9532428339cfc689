// The ldm3d-edge viewer: prompt -> job -> a depth-displaced mesh (perspective) or sphere (panorama) to walk in.
// Depth arrives as raw float32 (<name>_depth.f32), so the browser sees all 16 bits; the RGB is the texture.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/OrbitControls.js';
import { VRButton } from 'three/addons/VRButton.js';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

const $ = (id) => document.getElementById(id);
const view = $('view');
const EDGE_THRESHOLD = 0.2;      // drop triangles across depth edges (relative distance spread), as scene3d does
const MAX_GRID = 256;            // vertices along the longer side
const SAFE_RADIUS = 0.5;         // how far the viewer may walk, x the distance of the nearest content

const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
renderer.xr.enabled = true;
view.appendChild(renderer.domElement);
if (navigator.xr) {
  navigator.xr.isSessionSupported('immersive-vr').then((ok) => { if (ok) document.body.appendChild(VRButton.createButton(renderer)); });
}
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x202020);
const camera = new THREE.PerspectiveCamera(60, 1, 0.01, 1000);
const rig = new THREE.Group();           // moves the camera (and the XR viewer) within the safe radius
rig.add(camera);
scene.add(rig);
const controls = new OrbitControls(camera, renderer.domElement);
const state = { name: null, info: null, depth: null, texture: null, mesh: null, grid: null, loaded: false,
                scene: 'relief', reach: 0 };
window.ldm3dViewer = { state, loadResult, renderer, rig, camera, SAFE_RADIUS };   // for tests and embedding

function resize() {
  const w = view.clientWidth || 1, h = view.clientHeight || 1;
  renderer.setSize(w, h, false);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
}
window.addEventListener('resize', resize);

// --- geometry: the same camera models and depth mapping as ldm3d_edge.scene3d ---------------------------------
function toDistance(d, near, far) { return 1 / (d / near + (1 - d) / far); }

function ray(u, v, info) {
  const W = info.width, H = info.height;
  if (info.camera && info.camera.model === 'equirectangular') {
    const lon = u / W * 2 * Math.PI - Math.PI, lat = Math.PI / 2 - v / H * Math.PI;
    return [Math.cos(lat) * Math.sin(lon), Math.sin(lat), -Math.cos(lat) * Math.cos(lon)];
  }
  const hfov = (info.camera && info.camera.hfov_deg) || 60;
  const f = (W / 2) / Math.tan(hfov * Math.PI / 360);
  return [(u - W / 2) / f, -(v - H / 2) / f, -1];
}

function buildGrid(info, depth) {
  const W = info.width, H = info.height, pano = info.camera && info.camera.model === 'equirectangular';
  const step = Math.max(1, Math.ceil(Math.max(W, H) / MAX_GRID));
  const cols = Math.floor((W - 1) / step) + 1, rows = Math.floor((H - 1) / step) + 1;
  const gcols = pano ? cols + 1 : cols;   // a panorama repeats its first column at u = 1 so the texture closes
  const m = info.depth_mapping || {}, near = m.near || 1, far = m.far || 10;
  const n = gcols * rows, rays = new Float32Array(n * 3), dist = new Float32Array(n), uv = new Float32Array(n * 2);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < gcols; j++) {
      const jj = j % cols, x = jj * step, y = i * step, k = i * gcols + j;
      const u = x + 0.5, v = y + 0.5;
      const r = ray(u, v, info);
      rays.set(r, k * 3);
      dist[k] = toDistance(depth[y * W + x], near, far);
      uv[k * 2] = j === cols ? 1 : u / W;
      uv[k * 2 + 1] = 1 - v / H;
    }
  }
  const index = [];
  for (let i = 0; i < rows - 1; i++) {
    for (let j = 0; j < gcols - 1; j++) {
      const a = i * gcols + j, b = a + 1, c = a + gcols, d = c + 1;
      for (const t of [[a, c, b], [b, c, d]]) {
        const ds = t.map((q) => dist[q]);
        const lo = Math.min(...ds), hi = Math.max(...ds);
        if (pano || hi - lo <= EDGE_THRESHOLD * lo) index.push(...t);
      }
    }
  }
  const sorted = Array.from(dist).sort((p, q) => p - q);
  return { rays, dist, uv, index, median: sorted[Math.floor(sorted.length / 2)],
           nearest: sorted[Math.floor(sorted.length / 20)], pano };
}

function displace(grid, strength) {
  // r = median * (distance / median) ^ strength: 1 is the true relief, 0 puts everything at the median distance,
  // 2 doubles every ratio of distances (and stays in front of the viewer, unlike a linear stretch)
  const pos = new Float32Array(grid.dist.length * 3);
  for (let k = 0; k < grid.dist.length; k++) {
    const r = grid.median * Math.pow(grid.dist[k] / grid.median, strength);
    pos[k * 3] = grid.rays[k * 3] * r; pos[k * 3 + 1] = grid.rays[k * 3 + 1] * r; pos[k * 3 + 2] = grid.rays[k * 3 + 2] * r;
  }
  return pos;
}

function show(points) {
  const grid = state.grid;
  if (state.mesh) { scene.remove(state.mesh); state.mesh.geometry.dispose(); state.mesh.material.dispose(); }
  if (points) {          // the fused scene of `ldm3d explore`: coloured points, 4 x 4 per source pixel
    const angle = grid.pano ? 2 * Math.PI / state.info.width
      : 2 * Math.tan(((state.info.camera && state.info.camera.hfov_deg) || 60) * Math.PI / 360) / state.info.width;
    state.mesh = new THREE.Points(points, new THREE.PointsMaterial({ vertexColors: true, size: 0.5 * angle * grid.median }));
  } else {
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute('position', new THREE.BufferAttribute(displace(grid, strength()), 3));
    geometry.setAttribute('uv', new THREE.BufferAttribute(grid.uv, 2));
    geometry.setIndex(grid.index);
    const material = new THREE.MeshBasicMaterial({ map: state.texture, side: THREE.DoubleSide });
    state.mesh = new THREE.Mesh(geometry, material);
  }
  scene.add(state.mesh);
  $('depth-strength').disabled = Boolean(points);
  rig.position.set(0, 0, 0);
  camera.position.set(0, 0, 0);
  if (grid.pano) {       // inside the sphere: turn the head around a point just in front of the eye
    controls.target.set(0, 0, -0.01);
    controls.enableZoom = false;
    controls.rotateSpeed = -0.35;
  } else {               // in front of the relief: orbit around its middle distance, from a little aside so
    // the relief shows at once
    camera.position.set(0.08 * grid.nearest, 0.04 * grid.nearest, 0);
    controls.target.set(0, 0, -grid.median);
    controls.enableZoom = true;
    controls.rotateSpeed = 0.6;
  }
  controls.update();
}

function strength() { return parseFloat($('depth-strength').value); }

$('depth-strength').addEventListener('input', () => {
  if (!state.mesh || state.scene !== 'relief') return;
  state.mesh.geometry.attributes.position.array.set(displace(state.grid, strength()));
  state.mesh.geometry.attributes.position.needsUpdate = true;
  state.mesh.geometry.computeBoundingSphere();
});

async function fetchOk(url, options) {
  const r = await fetch(url, options);
  if (!r.ok) {
    let msg = `${r.status}`;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}

// scene 'relief': the result's depth as a displaced mesh or sphere; 'explore': the fused scene its explore output
// wrote (<name>_explore.glb), walkable as far as the walk's farthest keyframe (<name>_explore.json)
async function loadResult(name, sceneKind = 'relief') {
  document.body.dataset.state = 'loading';
  state.loaded = false;
  const info = await (await fetchOk(`/v1/results/${name}.json`)).json();
  const depth = new Float32Array(await (await fetchOk(`/v1/results/${name}_depth.f32`)).arrayBuffer());
  const texture = await new THREE.TextureLoader().loadAsync(`/v1/results/${name}_rgb.png`);
  texture.colorSpace = THREE.SRGBColorSpace;
  let points = null, walk = null;
  if (sceneKind === 'explore') {
    walk = await (await fetchOk(`/v1/results/${name}_explore.json`)).json();
    const gltf = await new GLTFLoader().loadAsync(`/v1/results/${name}_explore.glb`);
    gltf.scene.traverse((o) => { if (o.isPoints && !points) points = o.geometry; });
    if (!points) throw new Error(`${name}_explore.glb holds no points`);
  }
  if (state.texture) state.texture.dispose();
  const grid = buildGrid(info, depth);
  // walking: within SAFE_RADIUS x the nearest content of the relief; in a fused scene as far as the walk went
  const farthest = walk ? Math.max(...walk.keyframes.map((k) => Math.hypot(...k.position))) : 0;
  Object.assign(state, { name, info, depth, texture, grid, scene: sceneKind,
                         reach: walk ? Math.max(farthest, SAFE_RADIUS * grid.nearest) : SAFE_RADIUS * grid.nearest });
  show(points);
  markCurrent();
  const item = state.items && state.items.find((it) => it.name === name);
  $('scene-kind').hidden = !(item && item.explore);
  $('scene-kind').textContent = sceneKind === 'explore' ? 'relief' : 'fused scene';
  requestAnimationFrame(() => requestAnimationFrame(() => { state.loaded = true; document.body.dataset.state = 'loaded'; }));
  $('status').textContent = info.prompt || name;
}

// --- moving: keys and gamepad, within the safe radius ------------------------------------------------------------
const keys = new Set();
window.addEventListener('keydown', (e) => { if (e.target.tagName !== 'INPUT') keys.add(e.key.toLowerCase()); });
window.addEventListener('keyup', (e) => keys.delete(e.key.toLowerCase()));

function move(dt) {
  let fwd = 0, side = 0;
  if (keys.has('w') || keys.has('arrowup')) fwd += 1;
  if (keys.has('s') || keys.has('arrowdown')) fwd -= 1;
  if (keys.has('d') || keys.has('arrowright')) side += 1;
  if (keys.has('a') || keys.has('arrowleft')) side -= 1;
  for (const pad of (navigator.getGamepads ? navigator.getGamepads() : [])) {
    if (pad && pad.axes.length >= 2) { side += Math.abs(pad.axes[0]) > 0.15 ? pad.axes[0] : 0; fwd -= Math.abs(pad.axes[1]) > 0.15 ? pad.axes[1] : 0; }
  }
  if (!fwd && !side) return;
  const dir = new THREE.Vector3(); camera.getWorldDirection(dir); dir.y = 0; dir.normalize();
  const right = new THREE.Vector3().crossVectors(dir, camera.up).normalize();
  const speed = 0.25 * state.grid.nearest * dt;
  const next = rig.position.clone().addScaledVector(dir, fwd * speed).addScaledVector(right, side * speed);
  if (next.length() > state.reach) next.setLength(state.reach);
  rig.position.copy(next);
}

let last = performance.now();
renderer.setAnimationLoop(() => {
  const now = performance.now();
  if (state.mesh) move((now - last) / 1000);
  last = now;
  controls.update();
  // OrbitControls aims the camera at its target as a world point, but camera and target live in the rig, which
  // walking moves: aim again at the target where the rig has taken it (else, once walked past the target, the
  // view flipped round and W walked backwards)
  rig.updateMatrixWorld();
  camera.lookAt(rig.localToWorld(controls.target.clone()));
  renderer.render(scene, camera);
});

// --- generating, and the gallery ------------------------------------------------------------------------------
async function refreshGallery() {
  const items = await (await fetchOk('/v1/results')).json();
  state.items = items;
  const g = $('gallery');
  g.replaceChildren();
  for (const it of items) {
    const b = document.createElement('button');
    b.dataset.name = it.name;
    b.title = it.prompt || it.name;
    const img = document.createElement('img'); img.src = it.rgb; img.alt = it.prompt || it.name;
    const label = document.createElement('span');
    label.textContent = (it.camera === 'equirectangular' ? '360° ' : '') + (it.prompt || it.name) + (it.explore ? ' · walk' : '');
    b.append(img, label);
    b.addEventListener('click', () => loadResult(it.name).catch(fail));
    g.append(b);
  }
  markCurrent();
}

function markCurrent() {
  for (const b of $('gallery').children) b.classList.toggle('current', b.dataset.name === state.name);
}

$('scene-kind').addEventListener('click', () => {
  if (state.name) loadResult(state.name, state.scene === 'explore' ? 'relief' : 'explore').catch(fail);
});

function fail(e) { $('status').textContent = `error: ${e.message}`; document.body.dataset.state = 'error'; }

$('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const prompt = $('prompt').value.trim() || $('prompt').placeholder;
  try {
    const r = await fetch('/v1/generate', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt, pano: $('pano').checked }) });
    if (r.status === 429) { $('status').textContent = `busy: try again in ${r.headers.get('Retry-After')} s`; return; }
    if (!r.ok) throw new Error((await r.json()).error || r.status);
    const job = await r.json();
    document.body.dataset.state = 'generating';
    for (;;) {
      const s = await (await fetchOk(`/v1/jobs/${job.id}`)).json();
      $('progress').max = s.progress.steps || 1;
      $('progress').value = s.progress.step;
      $('status').textContent = `${s.status}: step ${s.progress.step} of ${s.progress.steps}`;
      if (s.status === 'done') break;
      if (s.status === 'failed' || s.status === 'cancelled') throw new Error(s.error || s.status);
      await new Promise((res) => setTimeout(res, 250));
    }
    await refreshGallery();
    await loadResult(job.id);
  } catch (err) { fail(err); }
});

resize();
const query = new URLSearchParams(location.search), wanted = query.get('result');
refreshGallery().then(() => (wanted ? loadResult(wanted, query.get('scene') === 'explore' ? 'explore' : 'relief') : null)).catch(fail);
document.body.dataset.state = document.body.dataset.state || 'ready';
