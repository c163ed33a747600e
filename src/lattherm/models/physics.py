"""Physics-informed logits ("approximate probabilities", tVAN; TwoBo): the exact local Boltzmann
factor of the site being placed, given the sites already placed, added to every conditional.

For a binary Hamiltonian written as a sum of clusters, E(x) = const + sum_c w_c prod_{j in c} s_j
(pair models: the bonds -J_ij s_i s_j and the field -h s_i; a cluster expansion: every cluster of
every orbit), the energy terms that involve only placed sites and the new site i are the clusters
through i whose other sites are all placed. With phi_k the point function of species k,

    E_i(k) = phi_k * F_i - dmu * (2 k - 1),   F_i = sum_{c through i, rest of c placed} w_c prod_{j in c - i} s_j,

and the model's logits become network(k) - beta * E_i(k): the untrained (zero-output) network is
then the product of these local factors, and the network learns only the correction. Each
cluster lists only the sites it holds an odd number of times (s^2 = 1 for the others), so along
any full order every non-constant cluster is counted exactly once, at its last site: the
zero-network sampler's ln q(x) is -beta E(x) up to the per-step normalisations.

The tables (:func:`local_energy_tables`) come from the system's Hamiltonian and depend on the
supercell; they are attached to a model (:func:`attach_physics`) where the model meets its system
(training, loading a checkpoint) and are not part of the weights. beta (and a semi-grand dmu) are
read per row from ``cond`` when the model is conditioned on them (the batch's beta: annealed
beta_t in training), else from the fixed values the caller sets (:func:`set_physics_beta`). Every
step costs O(width of the site's table) (its neighbours), so the KV-cached sampler stays
incremental.

A model that places a patch of k sites per step (vocabulary 2^k) gets the energy of the whole
patch for each of its values v: the terms through each patch site to placed sites (the F_i above,
with the patch's own sites unplaced), plus the bonds inside the patch, a table (M, 2^k) of the
cell computed once. That needs a pair model (Ising, Edwards-Anderson): a cluster of three or more
sites partly inside a patch is refused.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lattherm.errors import LatthermError
from lattherm.hamiltonians.base import SemiGrand


class PhysicsError(LatthermError):
    """A model's physics_logits cannot be built for this Hamiltonian."""


def local_energy_tables(hamiltonian) -> tuple[Tensor, Tensor, Tensor, float]:
    """``partners`` (N or 1, W, P) int64 padded with -1, ``weights`` (N, W) float64, the point
    function ``phi`` (2,) float64 and the semi-grand ``dmu`` of ``hamiltonian``: the energy terms
    through site i are ``weights[i, c] * phi[x_i] * prod_p s[partners[i, c, p]]`` (padding: 1)."""
    from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
    from lattherm.hamiltonians.ising import BondIsing, SherringtonKirkpatrick

    dmu = 0.0
    if isinstance(hamiltonian, SemiGrand):
        dmu, hamiltonian = hamiltonian.dmu, hamiltonian.base
    spin = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    if isinstance(hamiltonian, BondIsing):
        neighbours = hamiltonian.neighbours.cpu()
        n = neighbours.shape[0]
        weights = -hamiltonian.neighbour_couplings.cpu().to(torch.float64)
        self_bond = neighbours == torch.arange(n)[:, None]  # s_i^2 = 1: a constant, not a term
        partners = torch.where(self_bond, -1, neighbours)[..., None]
        weights = torch.where(self_bond, 0.0, weights)
        if hamiltonian.h != 0.0:  # the field: a cluster with no partners
            partners = torch.cat([partners, torch.full((n, 1, 1), -1)], 1)
            weights = torch.cat([weights, torch.full((n, 1), -hamiltonian.h, dtype=torch.float64)], 1)
        return partners, weights, spin, dmu
    if isinstance(hamiltonian, SherringtonKirkpatrick):  # dense: one shared partner row, all sites
        n = hamiltonian.n_sites
        return torch.arange(n)[None, :, None], -hamiltonian.coupling_matrix.cpu().to(torch.float64), spin, dmu
    if isinstance(hamiltonian, ClusterExpansionHamiltonian):
        n = hamiltonian.n_sites
        partners = hamiltonian.local_partners.cpu().clone()  # (N, W, 3), padded with site n
        partners[partners == n] = -1
        # a partner held an even number of times contributes s^2 = 1: drop it
        count = (partners[..., :, None] == partners[..., None, :]).sum(-1)
        partners = torch.where((count % 2 == 1) & (partners >= 0), partners, -1)
        return partners, hamiltonian.local_weights.cpu().to(torch.float64), hamiltonian.point_function.cpu(), dmu
    raise TypeError(f"physics_logits supports pair models (Ising, Edwards-Anderson, Sherrington-Kirkpatrick) and "
                    f"cluster expansions, not {type(hamiltonian).__name__}")


def inside_patch_energies(partners: Tensor, weights: Tensor, patches: Tensor, spins: Tensor) -> Tensor:
    """The energy of the bonds inside each patch for each patch value, (M, V) float64, from a pair
    model's tables (:func:`local_energy_tables`; every bond is listed from both ends), the
    patches (M, k) and the spins of each value (V, k)."""
    n = weights.shape[0]
    partner = partners.expand(n, -1, -1)[patches, :, 0]  # (M, k, W)
    match = partner[..., None] == patches[:, None, None, :]  # (M, k, W, k): bond from site a to site b
    coupling = (weights[patches][..., None] * match).sum(2)  # (M, k, k)
    return 0.5 * torch.einsum("va,mab,vb->mv", spins, coupling, spins)


class PhysicsLogits(nn.Module):
    """-beta E(v) for the tokens being placed (a site's species, or a patch's values v), from the
    tables of one Hamiltonian on one cell.

    ``conditioning`` (a :class:`lattherm.sampling.evaluate.Conditioning`, or None) says which
    cond columns hold beta / beta_ref and dmu / dmu_scale; the others are fixed attributes
    ``beta`` (set by the caller) and ``dmu`` (the Hamiltonian's). ``patches`` (M, k) and
    ``values`` (V, k): the model's tokens (None: one site per token, values 0 and 1)."""

    def __init__(self, hamiltonian, conditioning=None, patches: Tensor | None = None, values: Tensor | None = None):
        super().__init__()
        partners, weights, phi, dmu = local_energy_tables(hamiltonian)
        self.n_sites = weights.shape[0]
        patches = torch.arange(self.n_sites)[:, None] if patches is None else patches.cpu()
        values = torch.arange(2)[:, None] if values is None else values.cpu()
        spin = torch.tensor([-1.0, 1.0], dtype=torch.float64)
        inside = torch.zeros(len(patches), len(values), dtype=torch.float64)
        if patches.shape[1] > 1:
            if partners.shape[-1] > 1:
                raise PhysicsError(f"physics_logits with patches needs a pair model (Ising, Edwards-Anderson), not "
                                   f"{type(hamiltonian).__name__}: set patch: null or physics_logits: false")
            inside = inside_patch_energies(partners, weights, patches, spin[values])
        self.register_buffer("patches", patches, persistent=False)
        self.register_buffer("value_phi", phi.to(torch.float64)[values], persistent=False)  # (V, k)
        self.register_buffer("value_spin", spin[values].sum(1), persistent=False)  # (V,)
        self.register_buffer("inside", inside, persistent=False)
        pad = partners < 0
        self.register_buffer("partners", torch.where(pad, 0, partners), persistent=False)
        self.register_buffer("pad", pad, persistent=False)
        self.register_buffer("weights", weights, persistent=False)
        self.register_buffer("phi", phi.to(torch.float64), persistent=False)
        self.dmu = float(dmu)
        self.beta: float | None = None
        self.columns: dict[str, tuple[int, float]] = {}
        if conditioning is not None:
            for i, name in enumerate(conditioning.variables):
                if name in ("beta", "dmu"):
                    self.columns[name] = (i, float(conditioning.scales[name]))

    def _per_row(self, name: str, cond: Tensor | None, fixed: float | None, batch: int, device) -> Tensor:
        if name in self.columns:
            if cond is None:
                raise ValueError(f"physics_logits reads {name} from cond, but no cond was given")
            i, scale = self.columns[name]
            return cond[:, i].to(torch.float64) * scale
        if fixed is None:
            raise ValueError("physics_logits needs the inverse temperature: set it with "
                             "lattherm.models.physics.set_physics_beta(model, beta) (training and evaluation do)")
        return torch.full((batch,), float(fixed), dtype=torch.float64, device=device)

    def field(self, x: Tensor, sites: Tensor, key_rank: Tensor, query_rank: Tensor) -> Tensor:
        """F of the sites ``sites`` (1 or B, T) of x (B, N): the clusters through each whose
        other sites j all have ``key_rank[:, j] < query_rank`` ((1 or B, N) and (1 or B, T)).
        (B, T) float64; O(T W P)."""
        B = x.shape[0]
        if self.partners.shape[0] == 1:
            partners, pad = self.partners.expand(sites.shape[1], -1, -1)[None], self.pad.expand(sites.shape[1], -1, -1)[None]
        else:
            partners, pad = self.partners[sites], self.pad[sites]  # (1 or B, T, W, P)
        shape = (B, *partners.shape[1:])
        flat = partners.reshape(partners.shape[0], -1)
        spins = self.phi.to(torch.float64)[x.gather(1, flat.expand(B, -1))].view(shape)
        placed = key_rank.expand(B, -1).gather(1, flat.expand(B, -1)).view(shape) < query_rank[:, :, None, None]
        spins = torch.where(pad, 1.0, spins)
        inside = (pad | placed).all(-1)
        terms = self.weights.to(torch.float64)[sites] * spins.prod(-1)
        return torch.where(inside, terms, 0.0).sum(-1)

    def forward(self, x: Tensor, tokens: Tensor, key_rank: Tensor, query_rank: Tensor, cond: Tensor | None) -> Tensor:
        """-beta E(v) of the tokens ``tokens`` (1 or B, T) for each value v, (B, T, V) float64: the
        terms to the sites j with ``key_rank[:, j] < query_rank`` (see :meth:`field`), the bonds
        inside the patch, the semi-grand field."""
        B = x.shape[0]
        beta = self._per_row("beta", cond, self.beta, B, x.device)
        dmu = self._per_row("dmu", cond, self.dmu, B, x.device)
        sites = self.patches[tokens]  # (1 or B, T, k)
        T, k = sites.shape[1:]
        field = self.field(x, sites.flatten(1), key_rank, query_rank.repeat_interleave(k, 1)).view(B, T, k)
        energy = field @ self.value_phi.T + self.inside[tokens] - dmu[:, None, None] * self.value_spin
        return -beta[:, None, None] * energy


def _base(model):
    from lattherm.models.symmetric import innermost

    return innermost(model)


def uses_physics(model) -> bool:
    return bool(_base(model).hyperparameters().get("physics_logits", False))


def attach_physics(model, hamiltonian, conditioning=None, beta: float | None = None):
    """Give a ``physics_logits`` model the tables of ``hamiltonian`` (on the model's cell) and the
    meaning of its cond columns; ``beta``: the fixed inverse temperature (unconditioned on beta).
    A no-op for other models. Returns the model."""
    base = _base(model)
    if not uses_physics(model):
        return model
    if hamiltonian.n_sites != base.n_sites:
        raise ValueError(f"the Hamiltonian has {hamiltonian.n_sites} sites, the model {base.n_sites}")
    if getattr(base, "n_species", 2) != 2:
        raise ValueError("physics_logits needs a binary model")
    device = next(base.parameters()).device
    base.physics = PhysicsLogits(hamiltonian, conditioning, base.patches, base.patch_values).to(device)
    base.physics.beta = beta
    return model


def set_physics_beta(model, beta: float | None) -> None:
    """Set the fixed inverse temperature of a ``physics_logits`` model (a no-op for others)."""
    physics = getattr(_base(model), "physics", None)
    if physics is not None:
        physics.beta = None if beta is None else float(beta)


def physics_logits(model, x: Tensor, sites: Tensor, key_rank: Tensor, query_rank: Tensor,
                   cond: Tensor | None) -> Tensor | None:
    """The model's physics term (see :class:`PhysicsLogits`), None if it has none; an error if it
    should have one and none is attached."""
    if not model.config.physics_logits:
        return None
    physics = getattr(model, "physics", None)
    if physics is None:
        raise ValueError("this model has physics_logits but no Hamiltonian attached: call "
                         "lattherm.models.physics.attach_physics(model, hamiltonian) (training and loading do)")
    if physics.n_sites != model.n_sites:
        raise ValueError(f"the attached physics tables are for {physics.n_sites} sites, the model has {model.n_sites}: "
                         "attach the Hamiltonian of the new cell")
    return physics(x, sites, key_rank, query_rank, cond)
