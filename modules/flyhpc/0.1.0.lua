-- flyhpc 0.1.0: whole-brain fly LIF benchmarks on six simulators (Lmod modulefile).
-- Sets the flyhpc folders and PATH, then loads the site modules the cluster needs.
-- Site settings (edit on install, or set before `module load`):
--   FLYHPC_ROOT          flyhpc installation prefix (holds bin/flyhpc)
--   FLYHPC_SITE_MODULES  space-separated site modules, as in the cluster profile's slurm_setup
help([[flyhpc: run the FlyWire v783 LIF model on Brian2, Brian2CUDA, PyTorch, GeNN, NEST GPU, Brian2GeNN.]])
whatis("Name: flyhpc")
whatis("Version: 0.1.0")

local root = os.getenv("FLYHPC_ROOT") or pathJoin(myFileName():match("(.*)/modules/flyhpc/[^/]*$") or "/opt/flyhpc", ".venv")
local share = os.getenv("FLYHPC_SHARE") or "/project/flybrain"

prepend_path("PATH", pathJoin(root, "bin"))
setenv("FLYHPC_ROOT", root)
setenv("FLYHPC_IMAGES", os.getenv("FLYHPC_IMAGES") or pathJoin(share, "images"))
setenv("FLYHPC_DATA", os.getenv("FLYHPC_DATA") or pathJoin(share, "data"))
setenv("FLYHPC_RESULTS", os.getenv("FLYHPC_RESULTS") or pathJoin(share, "results"))

local site = os.getenv("FLYHPC_SITE_MODULES") or ""
for name in site:gmatch("%S+") do
    load(name)
end
