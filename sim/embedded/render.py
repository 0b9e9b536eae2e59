"""Headless OpenGL rasterizer (moderngl, EGL; Mesa llvmpipe on a CPU) for the embedded simulator.

One pass per camera draws all boxes (one instanced draw of a unit cube), the textured ground plane z=0 and
the sky into four attachments that share one depth test: RGB, CARLA semantic tag, instance id and planar
depth (metres along the optical axis, as CARLA's depth camera; 1000 where sky).

The camera model is CARLA's (:mod:`sim.camera`): a world point lands on the pixel ``sim.camera.project``
gives, pixel (u, v) covering [u, u+1) x [v, v+1), and every output is sampled at pixel centres.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import dataclass, fields

import cv2
import moderngl
import numpy as np
from drivestack.sim.camera import UE_TO_CV, intrinsics
from drivestack.sim.conventions import Tag
from drivestack.sim.settings import CameraConfig

SKY_DEPTH = 1000.0  # metres written where the sky is seen (CARLA's depth camera range)
AMBIENT = 0.45  # share of the light that does not depend on the sun
DIFFUSE = 0.55  # share of the light that follows n . sun

_OUTPUTS = """
layout(location = 0) out vec4 out_rgb;
layout(location = 1) out uint out_tag;
layout(location = 2) out uint out_instance;
layout(location = 3) out float out_depth;
"""

# The sky is drawn last, at the far plane with depth test '<=', so only pixels nothing else covered get it.
SKY_VS = """
#version 330
uniform mat3 pixel_to_world;  // (u, v, 1) -> world ray direction
uniform vec2 image_size;
uniform vec3 sky_rgb;
in vec2 in_ndc;
out vec3 v_rgb;
void main() {
    vec3 ray = normalize(pixel_to_world * vec3((in_ndc * 0.5 + 0.5) * image_size, 1.0));
    // Whiter towards the horizon: set at the corners, interpolated across the screen.
    v_rgb = mix(sky_rgb, vec3(1.0), 0.25 * (1.0 - clamp(ray.z, 0.0, 1.0)));
    gl_Position = vec4(in_ndc, 1.0, 1.0);
}
"""

SKY_FS = (
    """
#version 330
in vec3 v_rgb;
"""
    + _OUTPUTS
    + """
void main() {
    out_rgb = vec4(v_rgb, 1.0);
    out_tag = %du;
    out_instance = 0u;
    out_depth = %r;
}
"""
    % (Tag.SKY, SKY_DEPTH)
)

MAP_VS = """
#version 330
uniform mat4 mvp;
in vec2 in_xy;     // world position on z = 0
in vec2 in_texel;  // the same point in map texels (column, row)
out vec2 v_texel;
void main() {
    v_texel = in_texel;
    gl_Position = mvp * vec4(in_xy, 0.0, 1.0);
}
"""

MAP_FS = (
    """
#version 330
uniform sampler2D ground_rgb;
uniform usampler2D ground_tags;
uniform vec2 map_size;  // texels
uniform float light;    // sun and brightness on a surface facing up
in vec2 v_texel;
"""
    + _OUTPUTS
    + """
void main() {
    out_rgb = vec4(min(texture(ground_rgb, v_texel / map_size).rgb * light, 1.0), 1.0);
    out_tag = texelFetch(ground_tags, min(ivec2(v_texel), ivec2(map_size) - 1), 0).r;
    out_instance = 0u;
    out_depth = 1.0 / gl_FragCoord.w;
}
"""
)

OUTSIDE_VS = """
#version 330
uniform mat4 mvp;
in vec2 in_xy;
void main() { gl_Position = mvp * vec4(in_xy, 0.0, 1.0); }
"""

OUTSIDE_FS = (
    """
#version 330
uniform vec3 rgb;  // lit colour
uniform uint tag;
"""
    + _OUTPUTS
    + """
void main() {
    out_rgb = vec4(rgb, 1.0);
    out_tag = tag;
    out_instance = 0u;
    out_depth = 1.0 / gl_FragCoord.w;
}
"""
)

BOX_VS = """
#version 330
uniform mat4 mvp;
uniform vec3 sun;
uniform float brightness;
in vec3 in_pos;      // unit cube corner, components +-1
in vec3 in_normal;   // face normal of the unit cube
in vec3 in_centre;
in vec3 in_half;
in vec2 in_cos_sin;  // of the yaw
in vec3 in_color;
in float in_emissive;
in uint in_ids;      // tag | pattern << 8 | instance << 16
out vec3 v_world;
flat out vec3 v_rgb;
flat out vec3 v_normal;
flat out uint v_ids;
void main() {
    mat2 yaw = mat2(in_cos_sin.x, in_cos_sin.y, -in_cos_sin.y, in_cos_sin.x);
    vec3 local = in_pos * in_half;
    v_world = in_centre + vec3(yaw * local.xy, local.z);
    v_normal = vec3(yaw * in_normal.xy, in_normal.z);
    vec3 lit = in_color * (%r + %r * max(0.0, dot(v_normal, sun))) * brightness;
    v_rgb = clamp(mix(lit, in_color, in_emissive), 0.0, 1.0);
    v_ids = in_ids;
    gl_Position = mvp * vec4(v_world, 1.0);
}
""" % (AMBIENT, DIFFUSE)

BOX_FS = (
    """
#version 330
in vec3 v_world;
flat in vec3 v_rgb;
flat in vec3 v_normal;
flat in uint v_ids;
"""
    + _OUTPUTS
    + """
// Facade: windows 1.2 m wide every 2.5 m along the wall, 1.5 m tall every 3.2 m from 1 m up.
float facade(vec3 world, vec3 normal) {
    if (abs(normal.z) > 0.5 || world.z < 1.0) return 1.0;
    float along = dot(world.xy, vec2(-normal.y, normal.x));
    bool window = fract(along / 2.5) < 0.48 && fract((world.z - 1.0) / 3.2) < 0.47;
    return window ? 0.45 : 1.0;
}
void main() {
    bool patterned = ((v_ids >> 8) & 255u) == 1u;
    out_rgb = vec4(patterned ? v_rgb * facade(v_world, v_normal) : v_rgb, 1.0);
    out_tag = v_ids & 255u;
    out_instance = v_ids >> 16;
    out_depth = 1.0 / gl_FragCoord.w;
}
"""
)


_SQUARE = ((-1, -1), (1, -1), (1, 1), (-1, 1))  # counter-clockwise
_STRIP = (0, 1, 3, 2)  # the corners of _SQUARE in triangle-strip order


def _unit_cube() -> tuple[np.ndarray, np.ndarray]:
    """Vertices (position, normal; 4 per face) and triangle indices of the cube [-1, 1]^3. Triangles wind so
    that their right-hand normal points outwards, which is front-facing ('ccw') under this module's projection."""
    vertices, indices = [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = sign * np.eye(3)[axis]
            u_axis, v_axis = np.eye(3)[(axis + 1) % 3], np.eye(3)[(axis + 2) % 3]
            if sign < 0:
                u_axis, v_axis = v_axis, u_axis
            first = len(vertices)
            vertices += [np.concatenate([normal + a * u_axis + b * v_axis, normal]) for a, b in _SQUARE]
            indices += [first + i for i in (0, 1, 2, 0, 2, 3)]
    return np.array(vertices, dtype="f4"), np.array(indices, dtype="i4")


@dataclass
class BoxInstances:
    """Oriented boxes to draw, one row each (numpy arrays of equal length N)."""

    center: np.ndarray  # (N,3) float32 world centre of the box (x fwd, y right, z up; CARLA/Unreal world frame)
    half: np.ndarray  # (N,3) float32 half extents along the box's own x (length), y (width), z (height)
    yaw: np.ndarray  # (N,) float32 degrees, CARLA convention: rotation about z, positive turns x towards +y
    color: np.ndarray  # (N,3) uint8 RGB base colour
    tag: np.ndarray  # (N,) uint8 CARLA semantic tag
    instance: np.ndarray  # (N,) uint16 actor id (0 for scenery)
    emissive: np.ndarray  # (N,) float32 0..1; 1 = drawn at full colour regardless of sun
    pattern: np.ndarray  # (N,) uint8 0 = plain, 1 = building facade with a grid of darker windows

    @staticmethod
    def concat(parts: list[BoxInstances]) -> BoxInstances:
        """All rows of ``parts`` in order."""
        if not parts:
            return BoxInstances.empty()
        return BoxInstances(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(BoxInstances)))

    @staticmethod
    def from_rows(rows: list[tuple]) -> BoxInstances:
        """Boxes from rows (cx, cy, cz, hx, hy, hz, yaw_deg, (r, g, b), tag, instance, emissive, pattern)."""
        if not rows:
            return BoxInstances.empty()
        cols = list(zip(*rows))
        return BoxInstances(
            center=np.array(list(zip(cols[0], cols[1], cols[2])), dtype=np.float32),
            half=np.array(list(zip(cols[3], cols[4], cols[5])), dtype=np.float32),
            yaw=np.array(cols[6], dtype=np.float32),
            color=np.array(cols[7], dtype=np.uint8),
            tag=np.array(cols[8], dtype=np.uint8),
            instance=np.array(cols[9], dtype=np.uint16),
            emissive=np.array(cols[10], dtype=np.float32),
            pattern=np.array(cols[11], dtype=np.uint8),
        )

    @staticmethod
    def empty() -> BoxInstances:
        """No boxes."""
        return BoxInstances(
            center=np.zeros((0, 3), np.float32),
            half=np.zeros((0, 3), np.float32),
            yaw=np.zeros(0, np.float32),
            color=np.zeros((0, 3), np.uint8),
            tag=np.zeros(0, np.uint8),
            instance=np.zeros(0, np.uint16),
            emissive=np.zeros(0, np.float32),
            pattern=np.zeros(0, np.uint8),
        )

    def __len__(self) -> int:
        return len(self.center)


@dataclass
class GroundMap:
    """Top-down map of the ground plane z=0: texel (row r, col c) covers world x in [x0 + c*res, x0 + (c+1)*res),
    y in [y0 + r*res, y0 + (r+1)*res)."""

    rgb: np.ndarray  # (H,W,3) uint8
    tags: np.ndarray  # (H,W) uint8 CARLA tags (roads=1, road lines=24, sidewalks=2, terrain=10, ...)
    x0: float
    y0: float
    resolution: float  # metres per texel
    outside_rgb: tuple[int, int, int] = (90, 120, 60)  # ground beyond the map
    outside_tag: int = 10  # Terrain


@dataclass
class Lighting:
    """Sun and sky. Lit colour = base * (AMBIENT + DIFFUSE * max(0, n . sun)) * brightness; the sky is
    ``sky_rgb`` (whiter towards the horizon) and does not depend on ``brightness``."""

    sun_direction: tuple[float, float, float]  # unit vector pointing FROM the scene TO the sun, world frame (z up)
    brightness: float = 1.0
    sky_rgb: tuple[int, int, int] = (135, 180, 230)


@dataclass
class RenderedView:
    """One camera's image; the arrays are views into the renderer's buffers (see :meth:`Renderer.render`)."""

    rgb: np.ndarray  # (H,W,3) uint8, row 0 = top of image
    semantic: np.ndarray | None  # (H,W) uint8; None when rendered without truth
    instance: np.ndarray | None  # (H,W) uint16; None when rendered without truth
    depth: np.ndarray | None  # (H,W) float32 metres, 1000.0 where sky; None when rendered without truth


def projection_from_intrinsics(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """4x4 GL projection of standard camera coordinates (x right, y down, z forward) such that window
    coordinates equal CARLA pixel coordinates (u, v); framebuffer row v is image row v (no flip on read)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array(
        [
            [2.0 * fx / width, 0.0, 2.0 * cx / width - 1.0, 0.0],
            [0.0, 2.0 * fy / height, 2.0 * cy / height - 1.0, 0.0],
            [0.0, 0.0, (far + near) / (far - near), -2.0 * far * near / (far - near)],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )


CULL_MARGIN_M = 0.1  # a box is left out of a camera's draw only when its bounding sphere is this far outside the view


def _frustum_planes(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """(6, 4) planes (unit normal, offset) of the view volume in Unreal camera axes (x forward, y right, z up):
    a point p is inside when normal . p + offset >= 0 for every plane (image borders, near and far)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    normals = np.array([(cx, fx, 0.0), (width - cx, -fx, 0.0), (cy, 0.0, -fy), (height - cy, 0.0, fy), (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0)])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return np.column_stack([normals, [0.0, 0.0, 0.0, 0.0, -near, far]])


class _Target:
    """Framebuffer and read-back buffers of one camera."""

    def __init__(self, ctx: moderngl.Context, camera: CameraConfig, near: float, far: float) -> None:
        w, h = camera.width, camera.height
        self.size = (w, h)
        K = intrinsics(w, h, camera.fov)
        ue_to_cv = np.eye(4)
        ue_to_cv[:3, :3] = UE_TO_CV
        self.clip_from_camera = projection_from_intrinsics(K, w, h, near, far) @ ue_to_cv  # camera: Unreal axes
        self.camera_from_pixel = UE_TO_CV.T @ np.linalg.inv(K)  # (u, v, 1) -> ray, Unreal camera axes
        self.planes = _frustum_planes(K, w, h, near, far)
        self.attachments = [
            ctx.renderbuffer(self.size, 4, dtype="f1"),
            ctx.renderbuffer(self.size, 1, dtype="u1"),
            ctx.renderbuffer(self.size, 1, dtype="u2"),
            ctx.renderbuffer(self.size, 1, dtype="f4"),
        ]
        self.depth_buffer = ctx.depth_renderbuffer(self.size)
        self.fbo = ctx.framebuffer(self.attachments, self.depth_buffer)
        self.rgb_fbo = ctx.framebuffer(self.attachments[:1], self.depth_buffer)  # the shaders' other outputs go nowhere
        self.rgba = np.empty((h, w, 4), np.uint8)
        self.view = RenderedView(
            rgb=np.empty((h, w, 3), np.uint8),
            semantic=np.empty((h, w), np.uint8),
            instance=np.empty((h, w), np.uint16),
            depth=np.empty((h, w), np.float32),
        )

    def in_view(self, camera_to_world: np.ndarray, boxes: BoxInstances) -> np.ndarray:
        """Indices of the boxes whose bounding sphere reaches into this camera's view volume; the others cannot
        cover a pixel, so leaving them out of the draw changes no output."""
        normals = self.planes[:, :3] @ camera_to_world[:3, :3].T  # the planes in the world frame
        offsets = self.planes[:, 3] - normals @ camera_to_world[:3, 3]
        reach = np.sqrt(np.einsum("ij,ij->i", boxes.half, boxes.half, dtype=np.float64)) + CULL_MARGIN_M
        signed = boxes.center @ normals.T + offsets
        return np.flatnonzero((signed >= -reach[:, None]).all(axis=1))

    def framebuffer(self, truth: bool) -> moderngl.Framebuffer:
        """All four images, or the RGB one alone (about a third less rasterising on llvmpipe)."""
        return self.fbo if truth else self.rgb_fbo

    def clear_depth(self, fbo: moderngl.Framebuffer) -> None:
        """Reset depth to the far plane; colour attachments are left alone (a float clear is undefined
        on integer attachments, and the sky pass overwrites every pixel nothing else covers)."""
        masks = fbo.color_mask
        fbo.color_mask = [(False,) * 4] * len(masks)
        fbo.clear(depth=1.0)
        fbo.color_mask = masks

    def read(self, truth: bool) -> RenderedView:
        v = self.view
        self.framebuffer(truth).read_into(self.rgba, components=4, attachment=0, dtype="f1")
        cv2.cvtColor(self.rgba, cv2.COLOR_RGBA2RGB, dst=v.rgb)  # 10x faster than GL converting to RGB
        if not truth:
            return RenderedView(rgb=v.rgb, semantic=None, instance=None, depth=None)
        self.fbo.read_into(v.semantic, components=1, attachment=1, dtype="u1")
        self.fbo.read_into(v.instance, components=1, attachment=2, dtype="u2")
        self.fbo.read_into(v.depth, components=1, attachment=3, dtype="f4")
        return v

    def release(self) -> None:
        for obj in (self.fbo, self.rgb_fbo, *self.attachments, self.depth_buffer):
            obj.release()


def _load_llvm_users_before_mesa() -> None:
    """Import triton (shipped with PyPI's CUDA torch) before Mesa's llvmpipe starts: loaded after a Mesa EGL
    context exists, its own LLVM clashes with Mesa's and the process segfaults (torch imports it lazily,
    e.g. on the first ``torch._dynamo`` use). Loaded first, both work."""
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def _gl_matrix(m: np.ndarray) -> bytes:
    """Bytes of a numpy matrix in GLSL's column-major layout."""
    return np.ascontiguousarray(m.T, dtype="f4").tobytes()


class Renderer:
    """Renders RGB, semantic, instance and depth images of boxes on a textured ground for several cameras.

    Per camera: depth cleared, the boxes that reach into its view (one instanced draw; the rest are culled on
    the CPU, which llvmpipe would otherwise transform and clip), the ground map quad and the "outside" ring
    around it, then the sky; drawing the nearest things first lets the depth test skip hidden shading.
    """

    def __init__(self, cameras: list[CameraConfig], ground: GroundMap, near: float = 0.1, far: float = 1000.0) -> None:
        if not 0.0 < near < far:
            raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
        self.far = far
        _load_llvm_users_before_mesa()
        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.ctx.enable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        self.targets = [_Target(self.ctx, camera, near, far) for camera in cameras]

        self.sky = self.ctx.program(vertex_shader=SKY_VS, fragment_shader=SKY_FS)
        self.map_prog = self.ctx.program(vertex_shader=MAP_VS, fragment_shader=MAP_FS)
        self.outside_prog = self.ctx.program(vertex_shader=OUTSIDE_VS, fragment_shader=OUTSIDE_FS)
        self.box_prog = self.ctx.program(vertex_shader=BOX_VS, fragment_shader=BOX_FS)
        self.map_prog["ground_rgb"] = 0
        self.map_prog["ground_tags"] = 1

        self.quad = self.ctx.buffer(np.array([_SQUARE[i] for i in _STRIP], "f4"))
        self.sky_vao = self.ctx.vertex_array(self.sky, [(self.quad, "2f", "in_ndc")])
        cube_vertices, cube_indices = _unit_cube()
        self.cube = self.ctx.buffer(cube_vertices)
        self.cube_indices = self.ctx.buffer(cube_indices)
        self.capacity = 0
        self._grow(256)
        self.ground_objects: list[moderngl.Texture | moderngl.Buffer | moderngl.VertexArray] = []
        self.set_ground(ground)

    def _grow(self, capacity: int) -> None:
        """(Re)allocate the per-instance buffers for ``capacity`` boxes."""
        if self.capacity:
            for obj in (self.box_vao, self.inst_f, self.inst_u):
                obj.release()
        self.capacity = capacity
        self.floats = np.zeros((capacity, 12), np.float32)
        self.ids = np.zeros(capacity, np.uint32)
        self.inst_f = self.ctx.buffer(reserve=self.floats.nbytes)
        self.inst_u = self.ctx.buffer(reserve=self.ids.nbytes)
        self.box_vao = self.ctx.vertex_array(
            self.box_prog,
            [
                (self.cube, "3f 3f", "in_pos", "in_normal"),
                (self.inst_f, "3f 3f 2f 3f 1f/i", "in_centre", "in_half", "in_cos_sin", "in_color", "in_emissive"),
                (self.inst_u, "1u/i", "in_ids"),
            ],
            index_buffer=self.cube_indices,
        )

    def set_ground(self, ground: GroundMap) -> None:
        """Replace the ground map (a new town)."""
        h, w = ground.tags.shape
        if ground.rgb.shape != (h, w, 3):
            raise ValueError(f"ground rgb {ground.rgb.shape} does not match tags {ground.tags.shape}")
        if max(w, h) > self.ctx.info["GL_MAX_TEXTURE_SIZE"]:
            raise ValueError(f"ground map {w}x{h} exceeds GL_MAX_TEXTURE_SIZE {self.ctx.info['GL_MAX_TEXTURE_SIZE']}")
        with self.ctx:
            self._load_ground(ground)

    def _load_ground(self, ground: GroundMap) -> None:
        h, w = ground.tags.shape
        for obj in self.ground_objects:
            obj.release()
        rgb = self.ctx.texture((w, h), 3, np.ascontiguousarray(ground.rgb, np.uint8))
        rgb.repeat_x = rgb.repeat_y = False
        rgb.build_mipmaps()
        rgb.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        tags = self.ctx.texture((w, h), 1, np.ascontiguousarray(ground.tags, np.uint8), dtype="u1")
        tags.filter = (moderngl.NEAREST, moderngl.NEAREST)

        # Map quad (x, y, column, row) and a ring around it reaching 4 * far beyond the map on every side:
        # triangle strips winding counter-clockwise seen from above; the shared corners keep them watertight.
        x1, y1 = ground.x0 + w * ground.resolution, ground.y0 + h * ground.resolution
        inner = [(ground.x0, ground.y0), (x1, ground.y0), (x1, y1), (ground.x0, y1)]
        margin = 4.0 * self.far
        outer = [(x + margin * sx, y + margin * sy) for (x, y), (sx, sy) in zip(inner, _SQUARE)]
        texels = [(0, 0), (w, 0), (w, h), (0, h)]
        map_quad = np.array([(*inner[i], *texels[i]) for i in _STRIP], "f4")
        ring = np.array([p for i in (0, 1, 2, 3, 0) for p in (inner[i], outer[i])], "f4")
        map_vbo, ring_vbo = self.ctx.buffer(map_quad), self.ctx.buffer(ring)
        self.map_vao = self.ctx.vertex_array(self.map_prog, [(map_vbo, "2f 2f", "in_xy", "in_texel")])
        self.outside_vao = self.ctx.vertex_array(self.outside_prog, [(ring_vbo, "2f", "in_xy")])
        self.ground_rgb, self.ground_tags = rgb, tags
        self.ground_objects = [rgb, tags, map_vbo, ring_vbo, self.map_vao, self.outside_vao]
        self.ground = ground
        self.map_prog["map_size"] = (w, h)
        self.outside_prog["tag"] = int(ground.outside_tag)

    def _upload(self, boxes: BoxInstances, rows: np.ndarray) -> None:
        """Write the boxes ``rows`` (indices, in drawing order) into the per-instance buffers."""
        n = len(rows)
        if n > self.capacity:
            self._grow(max(n, 2 * self.capacity))
        yaw = np.radians(boxes.yaw[rows], dtype=np.float32)
        f = self.floats[:n]
        f[:, 0:3] = boxes.center[rows]
        f[:, 3:6] = boxes.half[rows]
        np.cos(yaw, out=f[:, 6])
        np.sin(yaw, out=f[:, 7])
        np.multiply(boxes.color[rows], np.float32(1.0 / 255.0), out=f[:, 8:11])
        f[:, 11] = boxes.emissive[rows]
        ids = self.ids[:n]
        ids[:] = boxes.instance[rows].astype(np.uint32) << 16 | boxes.pattern[rows].astype(np.uint32) << 8 | boxes.tag[rows]
        self.inst_f.orphan()
        self.inst_f.write(f)
        self.inst_u.orphan()
        self.inst_u.write(ids)

    def _set_lighting(self, lighting: Lighting) -> None:
        norm = max(math.hypot(*lighting.sun_direction), 1e-12)
        sun = tuple(c / norm for c in lighting.sun_direction)
        self.box_prog["sun"] = sun
        self.box_prog["brightness"] = float(lighting.brightness)
        light = (AMBIENT + DIFFUSE * max(0.0, sun[2])) * lighting.brightness
        self.map_prog["light"] = light
        self.outside_prog["rgb"] = tuple(min(c / 255.0 * light, 1.0) for c in self.ground.outside_rgb)
        self.sky["sky_rgb"] = tuple(c / 255.0 for c in lighting.sky_rgb)

    def render(self, camera_to_world: list[np.ndarray], boxes: BoxInstances, lighting: Lighting, truth: bool = True) -> list[RenderedView]:
        """One view per camera (same order as cameras), each 4x4 camera_to_world in CARLA convention
        (``sim.camera.Pose(...).matrix()``); ``truth=False`` renders the RGB image alone (the same pixels).

        The returned arrays are the renderer's own buffers: the next ``render`` overwrites them, so copy
        what you keep.
        """
        if len(camera_to_world) != len(self.targets):
            raise ValueError(f"got {len(camera_to_world)} camera poses for {len(self.targets)} cameras")
        with self.ctx:  # several renderers may live in one thread; GL calls go to the current context
            return self._render(camera_to_world, boxes, lighting, truth)

    def _render(self, camera_to_world: list[np.ndarray], boxes: BoxInstances, lighting: Lighting, truth: bool) -> list[RenderedView]:
        self._set_lighting(lighting)
        self.ground_rgb.use(0)
        self.ground_tags.use(1)
        views = []
        for target, pose in zip(self.targets, camera_to_world):
            pose = np.asarray(pose, np.float64)
            rows = target.in_view(pose, boxes)
            self._upload(boxes, rows)
            mvp = _gl_matrix(target.clip_from_camera @ np.linalg.inv(pose))
            for prog in (self.box_prog, self.map_prog, self.outside_prog):
                prog["mvp"].write(mvp)
            self.sky["pixel_to_world"].write(_gl_matrix(pose[:3, :3] @ target.camera_from_pixel))
            self.sky["image_size"] = target.size

            fbo = target.framebuffer(truth)
            target.clear_depth(fbo)
            fbo.use()
            self.ctx.depth_func = "<"
            if len(rows):
                self.box_vao.render(moderngl.TRIANGLES, instances=len(rows))
            self.map_vao.render(moderngl.TRIANGLE_STRIP)
            self.outside_vao.render(moderngl.TRIANGLE_STRIP)
            self.ctx.depth_func = "<="
            self.sky_vao.render(moderngl.TRIANGLE_STRIP)
            views.append(target.read(truth))
        return views

    def close(self) -> None:
        """Free the GL context and everything in it."""
        with self.ctx:
            for target in self.targets:
                target.release()
        self.ctx.release()
