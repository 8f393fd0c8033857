"""FOCUS 1.4, Cost and Usage dataset: the spec's column list, encoded here from the spec and not from our code,
so that tests check the exporter against the spec rather than against itself.

Source: the FinOps FOCUS specification, version 1.4 (ratified 2026-06-04), repository
FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, `specification/datasets/cost_and_usage/dataset.md`, table
"Columns" (Column, Column Type, Feature Level, Allows Nulls, Data Type), and the allowed values in
`specification/datasets/cost_and_usage/columns/<column>.md`; cross-checked against the FOCUS 1.4 Data Model
workbook (as extracted in focus-data-toolkit 0.14.1, `model/focus_1_4_model.json`): the same 21 mandatory
columns with the same types. Where the two disagree on nullability (HostProviderName: the repository's table
says not null, the workbook allows null), the stricter is encoded. Formats: the Date/Time Format and Numeric
Format attributes (`specification/attributes/`): `YYYY-MM-DDTHH:mm:ssZ` in UTC; a plain decimal or E notation,
no symbols, no grouping, no `+` sign. Custom columns: Column Handling, `x_` prefix, after every FOCUS column.
"""

from __future__ import annotations

from dataclasses import dataclass

FOCUS_VERSION = "1.4"


@dataclass(frozen=True)
class Column:
    data_type: str  # Decimal, String, Date/Time, JSON
    allows_nulls: bool
    allowed: tuple[str, ...] = ()


MANDATORY: dict[str, Column] = {
    "BilledCost": Column("Decimal", False),
    "BillingAccountId": Column("String", False),
    "BillingAccountName": Column("String", True),
    "BillingCurrency": Column("String", False),
    "BillingPeriodEnd": Column("Date/Time", False),
    "BillingPeriodStart": Column("Date/Time", False),
    "ChargeCategory": Column("String", False, ("Usage", "Purchase", "Tax", "Credit", "Adjustment")),
    "ChargeClass": Column("String", True, ("Correction",)),
    "ChargeDescription": Column("String", True),
    "ChargePeriodEnd": Column("Date/Time", False),
    "ChargePeriodStart": Column("Date/Time", False),
    "ContractedCost": Column("Decimal", False),
    "EffectiveCost": Column("Decimal", False),
    "HostProviderName": Column("String", False),
    "InvoiceIssuerName": Column("String", False),
    "ListCost": Column("Decimal", False),
    "PricingQuantity": Column("Decimal", True),
    "PricingUnit": Column("String", True),
    "ServiceCategory": Column("String", False, (
        "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
        "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
        "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other")),
    "ServiceName": Column("String", False),
    "ServiceProviderName": Column("String", False),
}

# Conditional and recommended columns whose condition a Vast.ai rental meets (usage is measured in hours,
# resources are provisioned, Vast publishes its prices, accounts hold sub accounts): if present, as specified.
OPTIONAL: dict[str, Column] = {
    "ChargeFrequency": Column("String", False, ("One-Time", "Recurring", "Usage-Based")),
    "ConsumedQuantity": Column("Decimal", True),
    "ConsumedUnit": Column("String", True),
    "ContractedUnitPrice": Column("Decimal", True),
    "ListUnitPrice": Column("Decimal", True),
    # Conditional: present when the provider has more than one pricing category (interruptible rentals).
    "PricingCategory": Column("String", True, ("Standard", "Dynamic", "Committed", "Other")),
    # Conditional: present when the provider supports commitment discounts (Vast's reserved instances).
    "CommitmentDiscountCategory": Column("String", True, ("Spend", "Usage")),
    "CommitmentDiscountId": Column("String", True),
    "CommitmentDiscountName": Column("String", True),
    "CommitmentDiscountQuantity": Column("Decimal", True),
    "CommitmentDiscountStatus": Column("String", True, ("Used", "Unused")),
    "CommitmentDiscountType": Column("String", True),
    "CommitmentDiscountUnit": Column("String", True),
    "ResourceId": Column("String", True),
    "ResourceName": Column("String", True),
    "ResourceType": Column("String", True),
    "ServiceSubcategory": Column("String", False, ("Virtual Machines", "Block Storage", "Other (Compute)",
                                                   "Other (Storage)")),
    "SubAccountId": Column("String", True),
    "SubAccountName": Column("String", True),
}

# Every Cost and Usage column id of FOCUS 1.4 (65), so that a non-`x_` column the spec does not define fails.
ALL_COLUMNS: frozenset[str] = frozenset({
    "AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags",
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "CommitmentProgramEligibilityDetails", "ConsumedQuantity", "ConsumedUnit",
    "ContractApplied", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "HostProviderName",
    "InvoiceDetailId", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "RegionId", "RegionName", "ResourceId",
    "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "ServiceProviderName", "ServiceSubcategory",
    "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName", "SubAccountType",
    "Tags",
})
