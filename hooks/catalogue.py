"""Which immune globulin product a medication is (``knowledge/products.json``), contract §1.

By RxNorm code of a product; by brand name (the longest name first, so 'Octagam 10%' wins over a
bare 'Octagam', which selects the family entry); by a generic code (ATC J06BA*, SNOMED CT 333710000,
RxNorm) or generic words (immune globulin, IVIG, ...), which identify immune globulin but no
product. Hyperimmune and other non-replacement globulins (ATC J06BB, anti-D, hepatitis B, ...)
never count.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

from hooks.knowledge_base.schema import GenericCoding, Product, ProductsFile, Route
from hooks.terminology import ATC, Code, phrase_pattern

CACHE_SIZE = 8192


@dataclass(frozen=True)
class Identified:
    """An immune globulin medication: its product (None: generic), how it matched, and the route
    its generic code implies (ATC J06BA01 is IM/SC-class, J06BA02 IV), if any."""

    product: Product | None
    matched_by: str
    code_route: str | None


@dataclass(frozen=True)
class Choice:
    """A switch's product among the stocked ones (None: no stocked product fits) and the best
    product over the whole catalogue (None: none fits at all). Without a site formulary, or
    when the best product is stocked, the two are the same."""

    product: Product | None
    best: Product | None

    @property
    def best_not_stocked(self) -> Product | None:
        """The best product when the site does not stock it (the card says so), else None."""
        if self.best is None or (self.product is not None and self.product.id == self.best.id):
            return None
        return self.best


class Catalogue:
    def __init__(self, file: ProductsFile) -> None:
        self.products = file.products
        # The site formulary's product ids (None: no formulary, every product counts as stocked)
        self.stocked: frozenset[str] | None = None
        self._by_id = {product.id: product for product in file.products}
        self._codes = {
            (coding.system, coding.code): product
            for product in file.products
            for coding in product.codings
        }
        names = [(name, product) for product in file.products for name in product.match_names]
        # One pattern for every brand name; the longest name found in a text wins, as a
        # pharmacist reads "Octagam 10%" before "Octagam".
        self._name_pattern = phrase_pattern(name for name, _ in names)
        self._by_name = {name.lower(): product for name, product in names}
        self._generic: dict[tuple[str, str], GenericCoding] = {
            (coding.system, coding.code): coding for coding in file.generic.codings
        }
        self.generic_words = file.generic.match_words
        self.exclusion_words = file.exclusions.match_words
        self.exclusion_atc_prefixes = file.exclusions.atc_prefixes
        self._generic_pattern = phrase_pattern(file.generic.match_words)
        self._exclusion_pattern = phrase_pattern(file.exclusions.match_words)
        # Medication texts repeat across records and calls; recognising one is a pure function.
        self._identified = lru_cache(maxsize=CACHE_SIZE)(self._identify)

    def by_id(self, product_id: str) -> Product:
        return self._by_id[product_id]

    def stocking(self, ids: Collection[str]) -> Catalogue:
        """This catalogue at a site that stocks only ``ids`` (its formulary): switches choose
        among them. Identification is unchanged (a product not stocked is still recognised)."""
        unknown = sorted(set(ids) - self._by_id.keys())
        if unknown:
            raise ValueError(f"not catalogue products: {unknown}")
        stocked = copy.copy(self)
        stocked.stocked = frozenset(ids)
        return stocked

    def is_stocked(self, product: Product) -> bool:
        return self.stocked is None or product.id in self.stocked

    def choice(self, candidates: Sequence[Product]) -> Choice:
        """The first stocked product of ``candidates`` (in preference order, over the whole
        catalogue), and the first of them all."""
        stocked = next((p for p in candidates if self.is_stocked(p)), None)
        return Choice(stocked, candidates[0] if candidates else None)

    def substitutes(
        self,
        route: Route,
        instead_of: Product | None,
        labels: Collection[str] = (),
        avoid: Collection[str] = (),
        *,
        stocked_only: bool = True,
    ) -> list[Product]:
        """The products a switch may choose, in catalogue order (card contract §9, product
        substitution): a product, not a family entry; not discontinued; labelled for ``route``;
        not the ordered one; surely holding none of the excipients ``avoid``. Where some are
        labelled for one of ``labels`` (the order's indications as labels name them), only
        those. Then the site formulary: only stocked products, unless ``stocked_only`` is
        False (the best product over the whole catalogue, for the card to name). The other
        hard constraints (IgA, hypersensitivity) are the rules' to apply."""
        candidates = [
            product
            for product in self.products
            if not product.family
            and not product.discontinued
            and route in product.routes
            and (instead_of is None or product.id != instead_of.id)
            and not product.possible_excipients & set(avoid)
        ]
        wanted = set(labels)
        labelled = [p for p in candidates if p.labelled_for(route) & wanted]
        chosen = labelled or candidates
        return [p for p in chosen if self.is_stocked(p)] if stocked_only else chosen

    @property
    def generic_codings(self) -> tuple[GenericCoding, ...]:
        return tuple(self._generic.values())

    def excluded(self, codes: Sequence[Code], texts: Sequence[str]) -> bool:
        """A hyperimmune or other non-replacement globulin: never an immune globulin order."""
        if any(c.system == ATC and c.code.startswith(self.exclusion_atc_prefixes) for c in codes):
            return True
        pattern = self._exclusion_pattern
        return pattern is not None and any(pattern.search(text) for text in texts)

    def identify(self, codes: Sequence[Code], texts: Sequence[str]) -> Identified | None:
        """The immune globulin a medication concept names, or None when it names none."""
        return self._identified(tuple(codes), tuple(texts))

    def _identify(self, codes: Sequence[Code], texts: Sequence[str]) -> Identified | None:
        if self.excluded(codes, texts):
            return None
        for code in codes:
            product = self._codes.get((code.system, code.code))
            if product is not None:
                return Identified(product, code.label(), None)
        named = self._named_product(texts)
        if named is not None:
            return named
        for code in codes:
            generic = self._generic.get((code.system, code.code))
            if generic is not None:  # its verification status is not for the card (§9)
                return Identified(None, code.label(), generic.route)
        if self._generic_pattern is not None:
            for text in texts:
                found = self._generic_pattern.search(text)
                if found:
                    return Identified(None, f"text '{found.group(0)}'", None)
        return None

    def _named_product(self, texts: Sequence[str]) -> Identified | None:
        if self._name_pattern is None:
            return None
        found = [m.group(0) for text in texts for m in self._name_pattern.finditer(text)]
        if not found:
            return None
        name = max(found, key=len)
        return Identified(self._by_name[name.lower()], f"text '{name}'", None)
