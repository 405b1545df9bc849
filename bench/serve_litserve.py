"""The same exported model served by LitServe (a general framework) with its own dynamic batching,
for bench/serve_bench.py: ``python bench/serve_litserve.py MODEL.onnx PORT [--max-batch 16]``.

Everything but the framework is zoo's: the onnxruntime session (zoo.runtime.open_model, the same
options and threads), the preprocessing (its Preprocessor, on each batch in the inference worker,
as zoo serve does) and the answer (OnnxModel.read), so the comparison measures the serving layers.
It takes zoo serve's TF Serving JSON body (``{"instances": [{"b64": ...}]}`` or ``{"instances":
["a text"]}``, one input per request) at ``POST /predict``.
"""

from __future__ import annotations

import argparse
import base64
import io

import litserve as ls


class ZooModelAPI(ls.LitAPI):
    def __init__(self, path: str, threads: int, **kwargs):
        super().__init__(**kwargs)
        self.path, self.threads = path, threads

    def setup(self, device):
        from zoo.runtime import open_model

        self.model = open_model(self.path, threads=self.threads,
                                session_config={"session.intra_op.allow_spinning": "0"})  # as zoo serve's

    def decode_request(self, request):
        """(name, item): a text, or an image decoded from base64 (preprocessed with its batch)."""
        from PIL import Image

        instance = request["instances"][0]
        if isinstance(instance, str):
            return instance, instance
        return instance.get("name", "instances[0]"), Image.open(io.BytesIO(base64.b64decode(instance["b64"])))

    def batch(self, inputs):
        return [name for name, _ in inputs], self.model.encode([item for _, item in inputs])

    def predict(self, batch):
        names, feeds = batch
        return list(zip(names, self.model.run(feeds)))

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        name, row = output
        return {"predictions": [p.to_dict() for p in self.model.read(row[None, :], [name], 5)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("port", type=int)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    api = ZooModelAPI(args.model, args.threads, max_batch_size=args.max_batch, batch_timeout=args.max_delay_ms / 1000)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=60)
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False, num_api_servers=1)


if __name__ == "__main__":
    main()
