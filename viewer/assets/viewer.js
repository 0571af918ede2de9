// her2wsi slide viewer: the slide as Deep Zoom tiles, the model's
// attention per patch as an overlay (viridis, this slide's min to max),
// and the tile stage's tissue outline and patch grid as a second overlay
// drawn on a canvas of its own (one path per frame, only what is in view).
"use strict";
(function () {
  const body = document.body;
  const mpp = parseFloat(body.dataset.mpp) || 0;
  const viewer = OpenSeadragon({
    id: "osd",
    prefixUrl: "/viewer/openseadragon/images/",
    tileSources: body.dataset.dzi,
    showNavigator: true,
    drawer: "canvas", // keeps imageSmoothingEnabled: each patch one sharp cell
    imageSmoothingEnabled: false,
    gestureSettingsMouse: { clickToZoom: false },
    maxZoomPixelRatio: 4,
  });
  window.her2wsiViewer = viewer; // for tests and the console
  const viridis = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
  function colour(t) {
    t = Math.min(1, Math.max(0, t)) * (viridis.length - 1);
    const i = Math.min(viridis.length - 2, Math.floor(t)), f = t - i;
    return viridis[i].map((c, k) => Math.round(c + f * (viridis[i + 1][k] - c)));
  }
  const opacity = document.getElementById("opacity");
  const toggle = document.getElementById("overlay");
  const tilingToggle = document.getElementById("tiling");
  const info = document.getElementById("info");
  const pending = new Set(["attention", "tiling"]);
  function loaded(what) {
    pending.delete(what);
    if (pending.size) return;
    const m = /^#at=(\d+),(\d+)$/.exec(location.hash);
    const base = viewer.world.getItemAt(0);
    if (m && base) { // a link to a patch: shown, and zoomed to with its neighbours
      const pt = { x: +m[1], y: +m[2] }, Q = P || (tiling && tiling.Q) || 512;
      viewer.viewport.fitBounds(base.imageToViewportRectangle(pt.x - 1.5 * Q, pt.y - 1.5 * Q, 3 * Q, 3 * Q), true);
      showAt(pt);
    }
    body.dataset.ready = "1";
  }
  let overlay = null, cells = null, P = 0, ox = 0, oy = 0, cols = 0, att = null;
  function applyOpacity() {
    if (overlay) overlay.setOpacity(toggle.checked ? parseFloat(opacity.value) : 0);
  }
  opacity.addEventListener("input", applyOpacity);
  toggle.addEventListener("change", applyOpacity);

  const modelSelect = document.getElementById("model");
  if (modelSelect) {
    modelSelect.addEventListener("change", () => {
      const u = new URL(location.href);
      if (modelSelect.value) u.searchParams.set("model", modelSelect.value);
      else u.searchParams.delete("model");
      location.href = u.toString();
    });
  }

  function addOverlay(a) {
    att = a;
    const base = viewer.world.getItemAt(0);
    if (!base || !a.patches || !a.patches.length) {
      info.textContent = "no attention for this slide";
      return;
    }
    const size = base.getContentSize();
    P = a.patch_size_level0;
    ox = Math.min(...a.patches.map(p => p[0])) % P;
    oy = Math.min(...a.patches.map(p => p[1])) % P;
    cols = Math.ceil((size.x - ox) / P);
    const rows = Math.ceil((size.y - oy) / P);
    const canvas = document.createElement("canvas");
    canvas.width = cols; canvas.height = rows;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(cols, rows);
    cells = new Map();
    a.patches.forEach((p, i) => {
      const c = Math.floor((p[0] - ox) / P), r = Math.floor((p[1] - oy) / P);
      if (c < 0 || r < 0 || c >= cols || r >= rows) return;
      cells.set(r * cols + c, i);
      const [R, G, B] = colour(p[2]);
      const o = 4 * (r * cols + c);
      img.data[o] = R; img.data[o + 1] = G; img.data[o + 2] = B; img.data[o + 3] = 255;
    });
    ctx.putImageData(img, 0, 0);
    viewer.addTiledImage({
      tileSource: { type: "image", url: canvas.toDataURL("image/png") },
      x: ox / size.x, y: oy / size.x, width: cols * P / size.x,
      opacity: parseFloat(opacity.value),
      success: e => { overlay = e.item; applyOpacity(); },
    });
    if (a.prediction) {
      const probs = (a.probabilities || []).map(p => p.toFixed(3)).join(" / ");
      document.getElementById("prediction").innerHTML = "";
      const s = document.createElement("strong");
      s.textContent = "HER2 " + a.prediction;
      document.getElementById("prediction").append(s, probs ? " (0 / 1+ / 2+ / 3+: " + probs + ")" : "");
    }
  }

  // showAt: the patch under level-0 point pt (a click, or #at=X,Y in the
  // address, which also links to a patch).
  function showAt(pt) {
    if (cells) {
      const c = Math.floor((pt.x - ox) / P), r = Math.floor((pt.y - oy) / P);
      const i = c >= 0 && c < cols && r >= 0 ? cells.get(r * cols + c) : undefined;
      if (i !== undefined) {
        const p = att.patches[i];
        info.textContent = "patch " + i + " at (" + p[0] + ", " + p[1] + "), attention " + p[2].toFixed(3);
        return;
      }
    }
    const k = tiling && tiling.cellAt(pt);
    if (k !== undefined && k !== null) {
      const x = tiling.coords[2 * k], y = tiling.coords[2 * k + 1];
      info.textContent = "tiled patch " + k + " at (" + x + ", " + y + "): not among the patches the model saw";
      return;
    }
    info.textContent = "(" + Math.round(pt.x) + ", " + Math.round(pt.y) + "): no patch";
  }
  viewer.addHandler("canvas-click", e => {
    const base = viewer.world.getItemAt(0);
    if (e.quick && base) showAt(base.viewerElementToImageCoordinates(e.position));
  });

  // The tiling overlay: tiling.json's outline (one Path2D in level-0
  // pixels) and patch grid, redrawn each frame on a canvas over the
  // slide through the image→screen transform. Zoomed out (a patch under
  // 6 screen px), the kept patches are one image of a pixel per patch;
  // zoomed in, only the patches in view are outlined.
  let tiling = null;
  const layer = document.createElement("canvas");
  layer.id = "tiling-layer";
  layer.style.cssText = "position:absolute;left:0;top:0;width:100%;height:100%;pointer-events:none";
  viewer.canvas.appendChild(layer);
  function setTiling(t) {
    const Q = t.patch_size_level0, n = t.coords.length / 2;
    let tx = Infinity, ty = Infinity, mx = 0, my = 0;
    for (let i = 0; i < n; i++) {
      tx = Math.min(tx, t.coords[2 * i] % Q); ty = Math.min(ty, t.coords[2 * i + 1] % Q);
      mx = Math.max(mx, t.coords[2 * i]); my = Math.max(my, t.coords[2 * i + 1]);
    }
    if (!n) tx = ty = 0;
    const gc = Math.floor((mx - tx) / Q) + 1, gr = Math.floor((my - ty) / Q) + 1;
    const index = new Map(), occ = new Uint8Array(gc * gr);
    const pic = document.createElement("canvas");
    pic.width = gc; pic.height = gr;
    const pctx = pic.getContext("2d"), img = pctx.createImageData(gc, gr);
    for (let i = 0; i < n; i++) {
      const c = Math.floor((t.coords[2 * i] - tx) / Q), r = Math.floor((t.coords[2 * i + 1] - ty) / Q);
      index.set(r * gc + c, i);
      occ[r * gc + c] = 1;
      const o = 4 * (r * gc + c);
      img.data[o] = 0; img.data[o + 1] = 40; img.data[o + 2] = 255; img.data[o + 3] = 90;
    }
    pctx.putImageData(img, 0, 0);
    const outline = new Path2D();
    for (const l of t.outline || []) {
      outline.moveTo(l[0], l[1]);
      for (let k = 2; k < l.length; k += 2) outline.lineTo(l[k], l[k + 1]);
      outline.closePath();
    }
    tiling = {
      coords: t.coords, Q, tx, ty, gc, gr, index, occ, pic, outline, n,
      cellAt(pt) {
        const c = Math.floor((pt.x - tx) / Q), r = Math.floor((pt.y - ty) / Q);
        return c >= 0 && r >= 0 && c < gc && r < gr ? index.get(r * gc + c) : undefined;
      },
    };
    if (t.note) {
      tilingToggle.parentElement.title = t.note;
      tilingToggle.addEventListener("change", () => { if (tilingToggle.checked) info.textContent = t.note; });
    }
    drawTiling();
  }
  function drawTiling() {
    const dpr = window.devicePixelRatio || 1;
    const w = viewer.canvas.clientWidth, h = viewer.canvas.clientHeight;
    if (layer.width !== Math.round(w * dpr) || layer.height !== Math.round(h * dpr)) {
      layer.width = Math.round(w * dpr); layer.height = Math.round(h * dpr);
    }
    const ctx = layer.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, layer.width, layer.height);
    const base = viewer.world.getItemAt(0);
    if (!tilingToggle.checked || !tiling || !base) return;
    // image (level-0) pixels → element pixels: an affine map (rotation and flip included)
    const Pt = OpenSeadragon.Point, u = 1e4;
    const o = base.imageToViewerElementCoordinates(new Pt(0, 0));
    const ex = base.imageToViewerElementCoordinates(new Pt(u, 0));
    const ey = base.imageToViewerElementCoordinates(new Pt(0, u));
    const a = (ex.x - o.x) / u, b = (ex.y - o.y) / u, c = (ey.x - o.x) / u, d = (ey.y - o.y) / u;
    const scale = Math.hypot(a, b); // screen px per level-0 px
    ctx.setTransform(dpr * a, dpr * b, dpr * c, dpr * d, dpr * o.x, dpr * o.y);
    const t = tiling, Q = t.Q;
    if (Q * scale < 6) {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(t.pic, t.tx, t.ty, t.gc * Q, t.gr * Q);
    } else {
      // the patches in view: the image rectangle under the element's corners
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const [px, py] of [[0, 0], [w, 0], [0, h], [w, h]]) {
        const q = base.viewerElementToImageCoordinates(new Pt(px, py));
        x0 = Math.min(x0, q.x); y0 = Math.min(y0, q.y); x1 = Math.max(x1, q.x); y1 = Math.max(y1, q.y);
      }
      const c0 = Math.max(0, Math.floor((x0 - t.tx) / Q)), c1 = Math.min(t.gc - 1, Math.floor((x1 - t.tx) / Q));
      const r0 = Math.max(0, Math.floor((y0 - t.ty) / Q)), r1 = Math.min(t.gr - 1, Math.floor((y1 - t.ty) / Q));
      // each patch's edges, as runs: a horizontal line between rows r-1
      // and r wherever a patch above or below it was kept, and the same
      // for columns (a few hundred lines, not a rectangle per patch)
      const kept = (r, c) => r >= 0 && c >= 0 && r < t.gr && c < t.gc && t.occ[r * t.gc + c] === 1;
      const path = new Path2D();
      for (let r = r0; r <= r1 + 1; r++) {
        let start = -1;
        for (let cc = c0; cc <= c1 + 1; cc++) {
          const on = cc <= c1 && (kept(r - 1, cc) || kept(r, cc));
          if (on && start < 0) start = cc;
          if (!on && start >= 0) {
            path.moveTo(t.tx + start * Q, t.ty + r * Q); path.lineTo(t.tx + cc * Q, t.ty + r * Q);
            start = -1;
          }
        }
      }
      for (let cc = c0; cc <= c1 + 1; cc++) {
        let start = -1;
        for (let r = r0; r <= r1 + 1; r++) {
          const on = r <= r1 && (kept(r, cc - 1) || kept(r, cc));
          if (on && start < 0) start = r;
          if (!on && start >= 0) {
            path.moveTo(t.tx + cc * Q, t.ty + start * Q); path.lineTo(t.tx + cc * Q, t.ty + r * Q);
            start = -1;
          }
        }
      }
      ctx.lineWidth = 1 / scale;
      ctx.strokeStyle = "rgb(0, 40, 255)";
      ctx.stroke(path);
    }
    ctx.lineWidth = 2 / scale;
    ctx.strokeStyle = "rgb(0, 230, 0)";
    ctx.stroke(t.outline);
  }
  window.her2wsiTiling = { set: setTiling, draw: drawTiling }; // for tests
  if (new URLSearchParams(location.search).get("tiling") === "1") tilingToggle.checked = true;
  tilingToggle.addEventListener("change", drawTiling);
  viewer.addHandler("update-viewport", drawTiling);
  viewer.addHandler("resize", drawTiling);

  // o and t toggle the overlays (OpenSeadragon has + − arrows w a s d 0 r f).
  document.addEventListener("keydown", e => {
    if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|SELECT|TEXTAREA)$/.test((e.target || {}).tagName || "")) return;
    if (e.code === "KeyO") { toggle.checked = !toggle.checked; applyOpacity(); }
    if (e.code === "KeyT") { tilingToggle.checked = !tilingToggle.checked; drawTiling(); }
  });

  // The scale bar (a round length near 150 screen px) and the equivalent
  // objective magnification at the current zoom (40× ≈ 0.25 µm per screen px).
  function scaleBar() {
    const el = document.getElementById("scale"), base = viewer.world.getItemAt(0);
    if (!mpp || !base) return;
    const zoom = base.viewportToImageZoom(viewer.viewport.getZoom(true)); // screen px per level-0 px
    const umPerPx = mpp / zoom;
    let um = Math.pow(10, Math.floor(Math.log10(150 * umPerPx)));
    for (const m of [5, 2]) if (m * um / umPerPx <= 150) { um *= m; break; }
    el.innerHTML = "";
    const bar = document.createElement("div");
    bar.style.width = Math.round(um / umPerPx) + "px";
    const mag = 10 / umPerPx;
    const span = document.createElement("span");
    span.id = "mag";
    span.textContent = (mag < 10 ? mag.toFixed(1) : Math.round(mag)) + "×";
    el.append(bar, (um >= 1000 ? (um / 1000) + " mm" : um + " µm") + " · ", span);
  }
  viewer.addHandler("update-viewport", scaleBar);

  viewer.addOnceHandler("open", () => {
    scaleBar();
    viewer.canvas.focus(); // keyboard zoom and pan at once
    fetch(body.dataset.attention, { credentials: "same-origin" })
      .then(r => r.ok ? r.json() : Promise.reject(r.status))
      .then(addOverlay)
      .catch(() => { info.textContent = "no attention for this slide (run the predict stage)"; })
      .finally(() => loaded("attention"));
    fetch(body.dataset.tiling, { credentials: "same-origin" })
      .then(r => r.ok ? r.json() : Promise.reject(r.status))
      .then(setTiling)
      .catch(() => { tilingToggle.disabled = true; tilingToggle.parentElement.title = "no tiling outputs for this slide"; })
      .finally(() => loaded("tiling"));
  });
})();
