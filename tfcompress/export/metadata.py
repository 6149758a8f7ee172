"""TFLite model metadata (the `metadata_schema.fbs` that Android's image classifier reads), written and read back.

The only Python writer of this schema, tflite-support, is abandoned (no wheels for new
Pythons, and it pins protobuf below 4); MediaPipe's copy pins absl-py 2, which TF-MOT
0.8.1 excludes. So the few tables an image classifier needs are written here with the
`flatbuffers` runtime TensorFlow already depends on, slot by slot as the schema (v1.0.0
features only) declares them, and attached to the model with LiteRT's own model schema.
"""

import io
import zipfile

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as model_schema
from flatbuffers import number_types
from flatbuffers.table import Table

# Names fixed by the schema and by the readers (LiteRT Support, MediaPipe Tasks).
METADATA_NAME = "TFLITE_METADATA"
_METADATA_IDENTIFIER = b"M001"
_MODEL_IDENTIFIER = b"TFL3"
# Every field written here exists since schema 1.0.0.
_MIN_PARSER_VERSION = "1.0.0"

# Union tags and enum values, from metadata_schema.fbs.
_CONTENT_FEATURE, _CONTENT_IMAGE = 1, 2
_OPTIONS_NORMALIZATION = 1
_COLOR_SPACES = {"RGB": 1, "GRAYSCALE": 2}
_TENSOR_AXIS_LABELS = 2
# The table type of each field that holds tables, for reading.
_FIELD_TABLES = {
    "subgraph_metadata": "SubGraphMetadata",
    "input_tensor_metadata": "TensorMetadata",
    "output_tensor_metadata": "TensorMetadata",
    "content": "Content",
    "process_units": "ProcessUnit",
    "stats": "Stats",
    "associated_files": "AssociatedFile",
    "default_size": "ImageSize",
}

# Field slots of each table, in the order metadata_schema.fbs declares them (a union
# takes two slots: its type tag, then its value).
_SLOTS = {
    "ModelMetadata": ("name", "description", "version", "subgraph_metadata", "author", "license",
                      "associated_files", "min_parser_version"),
    "SubGraphMetadata": ("name", "description", "input_tensor_metadata", "output_tensor_metadata"),
    "TensorMetadata": ("name", "description", "dimension_names", "content", "process_units", "stats",
                       "associated_files"),
    "Content": ("content_properties_type", "content_properties", "range"),
    "ImageProperties": ("color_space", "default_size"),
    "ImageSize": ("width", "height"),
    "ProcessUnit": ("options_type", "options"),
    "NormalizationOptions": ("mean", "std"),
    "Stats": ("max", "min"),
    "AssociatedFile": ("name", "description", "type", "locale", "version"),
}  # fmt: skip


def image_classifier_metadata(
    *, name, description, input_name, output_name, color_space, size, mean, std, value_range, labels_file, version
) -> bytes:
    """The metadata flatbuffer of an image classifier: image input, normalization, scores with labels."""
    builder = flatbuffers.Builder(1024)
    table = _TableWriter(builder)
    size_table = table.write("ImageSize", width=("uint32", size[0]), height=("uint32", size[1]))
    image = table.write(
        "ImageProperties", color_space=("int8", _COLOR_SPACES[color_space]), default_size=("table", size_table)
    )
    normalization = table.write("NormalizationOptions", mean=("floats", mean), std=("floats", std))
    normalize = table.write(
        "ProcessUnit", options_type=("uint8", _OPTIONS_NORMALIZATION), options=("table", normalization)
    )
    input_metadata = table.write(
        "TensorMetadata",
        name=("string", input_name),
        description=("string", "Input image to be classified."),
        content=("table", _content(table, _CONTENT_IMAGE, image)),
        process_units=("tables", [normalize]),
        stats=("table", _stats(table, [value_range[0]] * len(mean), [value_range[1]] * len(mean))),
    )
    labels = table.write(
        "AssociatedFile",
        name=("string", labels_file),
        description=("string", "Labels for the categories that the model can recognize."),
        type=("int8", _TENSOR_AXIS_LABELS),
    )
    output_metadata = table.write(
        "TensorMetadata",
        name=("string", output_name),
        description=("string", "Scores of the labels respectively."),
        content=("table", _content(table, _CONTENT_FEATURE, table.write("FeatureProperties"))),
        stats=("table", _stats(table, [0.0], [1.0])),
        associated_files=("tables", [labels]),
    )
    subgraph = table.write(
        "SubGraphMetadata",
        input_tensor_metadata=("tables", [input_metadata]),
        output_tensor_metadata=("tables", [output_metadata]),
    )
    root = table.write(
        "ModelMetadata",
        name=("string", name),
        description=("string", description),
        version=("string", version),
        subgraph_metadata=("tables", [subgraph]),
        min_parser_version=("string", _MIN_PARSER_VERSION),
    )  # fmt: skip
    builder.Finish(root, file_identifier=_METADATA_IDENTIFIER)
    return bytes(builder.Output())


def attach(model_content: bytes, metadata: bytes, files: dict) -> bytes:
    """Stores `metadata` in the model's "TFLITE_METADATA" buffer and appends `files` as a zip."""
    model = model_schema.ModelT.InitFromObj(model_schema.Model.GetRootAs(model_content, 0))
    model.metadata = list(model.metadata or [])
    if any(entry.name.decode() == METADATA_NAME for entry in model.metadata):
        raise ValueError("The model already carries TFLite metadata; export it again without.")
    buffer = model_schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = model_schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_content) + len(metadata) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_MODEL_IDENTIFIER)
    archive = io.BytesIO(bytes(builder.Output()))
    archive.seek(0, io.SEEK_END)
    with zipfile.ZipFile(archive, "a") as files_zip:
        for file_name, data in files.items():
            files_zip.writestr(file_name, data)
    return archive.getvalue()


def read(content: bytes) -> dict:
    """Reads the image-classifier metadata and attached files back from `.tflite` bytes."""
    model = model_schema.Model.GetRootAs(content, 0)
    buffer_index = next(
        (
            model.Metadata(i).Buffer()
            for i in range(model.MetadataLength())
            if model.Metadata(i).Name() == METADATA_NAME.encode()
        ),
        None,
    )
    if buffer_index is None:
        return None
    data = model.Buffers(buffer_index).DataAsNumpy().tobytes()
    if data[4:8] != _METADATA_IDENTIFIER:
        raise ValueError(f"The {METADATA_NAME} buffer is not a metadata flatbuffer (identifier {data[4:8]!r}).")
    root = _TableReader(data, "ModelMetadata")
    subgraph = root.tables("subgraph_metadata")[0]
    tensor_in = subgraph.tables("input_tensor_metadata")[0]
    tensor_out = subgraph.tables("output_tensor_metadata")[0]
    image = tensor_in.table("content").table("content_properties", "ImageProperties")
    normalization = tensor_in.tables("process_units")[0].table("options", "NormalizationOptions")
    labels = tensor_out.tables("associated_files")[0]
    with zipfile.ZipFile(io.BytesIO(content)) as files_zip:
        files = {name: files_zip.read(name) for name in files_zip.namelist()}
    size = image.table("default_size")
    return {
        "name": root.string("name"),
        "description": root.string("description"),
        "version": root.string("version"),
        "min_parser_version": root.string("min_parser_version"),
        "input": {
            "name": tensor_in.string("name"),
            "content": tensor_in.table("content").number("content_properties_type", number_types.Uint8Flags),
            "color_space": {v: k for k, v in _COLOR_SPACES.items()}[
                image.number("color_space", number_types.Int8Flags)
            ],
            "size": (size.number("width", number_types.Uint32Flags), size.number("height", number_types.Uint32Flags)),
            "mean": normalization.floats("mean"),
            "std": normalization.floats("std"),
            "min": tensor_in.table("stats").floats("min"),
            "max": tensor_in.table("stats").floats("max"),
        },
        "output": {
            "name": tensor_out.string("name"),
            "content": tensor_out.table("content").number("content_properties_type", number_types.Uint8Flags),
            "labels_file": labels.string("name"),
            "labels_type": labels.number("type", number_types.Int8Flags),
        },
        "files": files,
    }


def _content(table, kind, properties) -> int:
    return table.write("Content", content_properties_type=("uint8", kind), content_properties=("table", properties))


def _stats(table, low, high) -> int:
    return table.write("Stats", max=("floats", high), min=("floats", low))


class _TableWriter:
    """Writes one schema table at a time: children first, as flatbuffers requires."""

    def __init__(self, builder):
        self._builder = builder

    def write(self, table_name, **fields) -> int:
        builder, slots = self._builder, _SLOTS.get(table_name, ())
        # Strings, vectors and child tables must be finished before the table starts.
        offsets = {name: self._prepare(kind, value) for name, (kind, value) in fields.items()}
        builder.StartObject(len(slots))
        for name, (kind, value) in fields.items():
            slot = slots.index(name)
            if kind == "int8":
                builder.PrependInt8Slot(slot, value, 0)
            elif kind == "uint8":
                builder.PrependUint8Slot(slot, value, 0)
            elif kind == "uint32":
                builder.PrependUint32Slot(slot, value, 0)
            else:
                builder.PrependUOffsetTRelativeSlot(slot, offsets[name], 0)
        return builder.EndObject()

    def _prepare(self, kind, value):
        builder = self._builder
        if kind == "string":
            return builder.CreateString(value)
        if kind == "floats":
            return builder.CreateNumpyVector(np.asarray(value, dtype=np.float32))
        if kind == "tables":
            builder.StartVector(4, len(value), 4)
            for offset in reversed(value):
                builder.PrependUOffsetTRelative(offset)
            return builder.EndVector()
        return value  # "table": already an offset; numbers are written in place


class _TableReader:
    """Reads fields of one schema table by name."""

    def __init__(self, data, table_name, position=None):
        if position is None:
            position = number_types.UOffsetTFlags.py_type(
                flatbuffers.encode.Get(number_types.UOffsetTFlags.packer_type, data, 0)
            )
        self._table = Table(data, position)
        self._slots = _SLOTS[table_name]

    def _offset(self, name):
        return self._table.Offset(4 + 2 * self._slots.index(name))

    def string(self, name):
        offset = self._offset(name)
        return self._table.String(offset + self._table.Pos).decode() if offset else None

    def number(self, name, flags):
        offset = self._offset(name)
        return self._table.Get(flags, offset + self._table.Pos) if offset else 0

    def floats(self, name):
        offset = self._offset(name)
        return self._table.GetVectorAsNumpy(number_types.Float32Flags, offset).tolist() if offset else []

    def table(self, name, table_name=None):
        offset = self._offset(name)
        if not offset:
            return None
        position = self._table.Indirect(offset + self._table.Pos)
        return _TableReader(self._table.Bytes, table_name or _FIELD_TABLES[name], position)

    def tables(self, name):
        offset = self._offset(name)
        if not offset:
            return []
        start = self._table.Vector(offset)
        return [
            _TableReader(self._table.Bytes, _FIELD_TABLES[name], self._table.Indirect(start + 4 * index))
            for index in range(self._table.VectorLen(offset))
        ]
