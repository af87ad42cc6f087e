/* libvirt_dl.h: libvirt and libxml2 loaded with dlopen at the first
 * libvirt call (lv_dl_load), so that the commands that never touch a
 * domain do not load them (nor the 30-odd libraries libvirt pulls in):
 * a table of function pointers, and each name used below made a call
 * through it. Headers only from pkg-config; private to core/source. */
#ifndef VMABACK_LIBVIRT_DL_H
#define VMABACK_LIBVIRT_DL_H

#ifndef VB_MODULE_source
#error "core/source/libvirt_dl.h is private to core/source: include core/source/source.h"
#endif

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "core/base/base.h"

#ifdef LIBXML_THREAD_ALLOC_ENABLED
#error "libxml2 with per-thread allocators: xmlFree is not a variable to look up"
#endif

/* X(name): the functions of libvirt.so.0 and of libxml2.so.2 vmaback calls. */
#define LV_DL_VIRT(X) \
	X(virConnectClose) X(virConnectListAllDomains) X(virConnectOpen) \
	X(virDomainAbortJob) X(virDomainBackupBegin) X(virDomainBackupGetXMLDesc) \
	X(virDomainCheckpointCreateXML) X(virDomainCheckpointDelete) \
	X(virDomainCheckpointFree) X(virDomainCheckpointGetName) \
	X(virDomainCheckpointGetXMLDesc) X(virDomainCheckpointLookupByName) \
	X(virDomainDefineXML) X(virDomainFSFreeze) X(virDomainFSThaw) X(virDomainFree) \
	X(virDomainGetBlockInfo) X(virDomainGetName) X(virDomainGetUUIDString) \
	X(virDomainGetXMLDesc) X(virDomainIsActive) X(virDomainListAllCheckpoints) \
	X(virDomainLookupByName) X(virDomainLookupByUUIDString) X(virGetLastErrorMessage) \
	X(virSetErrorFunc)
#define LV_DL_XML(X) \
	X(xmlDocDumpMemory) X(xmlDocGetRootElement) X(xmlDocSetRootElement) X(xmlFree) \
	X(xmlFreeDoc) X(xmlFreeNode) X(xmlGetProp) X(xmlNewChild) X(xmlNewDoc) X(xmlNewNode) \
	X(xmlNewNs) X(xmlNewProp) X(xmlNewTextChild) X(xmlNodeAddContent) \
	X(xmlNodeGetContent) X(xmlNodeSetContent) X(xmlReadMemory) X(xmlSetNs) X(xmlSetProp) \
	X(xmlStrcmp) X(xmlUnlinkNode) X(xmlXPathEvalExpression) X(xmlXPathFreeContext) \
	X(xmlXPathFreeObject) X(xmlXPathNewContext)

#define LV_DL_MEMBER(f) __typeof__(f) *p_##f;
struct lv_dl {
	LV_DL_VIRT(LV_DL_MEMBER)
	LV_DL_XML(LV_DL_MEMBER)
};
#undef LV_DL_MEMBER
extern struct lv_dl lv_dl;

/* Loads both libraries once; an error naming the Debian package when one
 * is missing (later calls give the same answer). */
int lv_dl_load(struct vb_error *err);

#ifndef LV_DL_TABLE
#define virConnectClose (*lv_dl.p_virConnectClose)
#define virConnectListAllDomains (*lv_dl.p_virConnectListAllDomains)
#define virConnectOpen (*lv_dl.p_virConnectOpen)
#define virDomainAbortJob (*lv_dl.p_virDomainAbortJob)
#define virDomainBackupBegin (*lv_dl.p_virDomainBackupBegin)
#define virDomainBackupGetXMLDesc (*lv_dl.p_virDomainBackupGetXMLDesc)
#define virDomainCheckpointCreateXML (*lv_dl.p_virDomainCheckpointCreateXML)
#define virDomainCheckpointDelete (*lv_dl.p_virDomainCheckpointDelete)
#define virDomainCheckpointFree (*lv_dl.p_virDomainCheckpointFree)
#define virDomainCheckpointGetName (*lv_dl.p_virDomainCheckpointGetName)
#define virDomainCheckpointGetXMLDesc (*lv_dl.p_virDomainCheckpointGetXMLDesc)
#define virDomainCheckpointLookupByName (*lv_dl.p_virDomainCheckpointLookupByName)
#define virDomainDefineXML (*lv_dl.p_virDomainDefineXML)
#define virDomainFSFreeze (*lv_dl.p_virDomainFSFreeze)
#define virDomainFSThaw (*lv_dl.p_virDomainFSThaw)
#define virDomainFree (*lv_dl.p_virDomainFree)
#define virDomainGetBlockInfo (*lv_dl.p_virDomainGetBlockInfo)
#define virDomainGetName (*lv_dl.p_virDomainGetName)
#define virDomainGetUUIDString (*lv_dl.p_virDomainGetUUIDString)
#define virDomainGetXMLDesc (*lv_dl.p_virDomainGetXMLDesc)
#define virDomainIsActive (*lv_dl.p_virDomainIsActive)
#define virDomainListAllCheckpoints (*lv_dl.p_virDomainListAllCheckpoints)
#define virDomainLookupByName (*lv_dl.p_virDomainLookupByName)
#define virDomainLookupByUUIDString (*lv_dl.p_virDomainLookupByUUIDString)
#define virGetLastErrorMessage (*lv_dl.p_virGetLastErrorMessage)
#define virSetErrorFunc (*lv_dl.p_virSetErrorFunc)
#define xmlDocDumpMemory (*lv_dl.p_xmlDocDumpMemory)
#define xmlDocGetRootElement (*lv_dl.p_xmlDocGetRootElement)
#define xmlDocSetRootElement (*lv_dl.p_xmlDocSetRootElement)
/* a variable of libxml2's (the free function), not a function */
#define xmlFree (*lv_dl.p_xmlFree)
#define xmlFreeDoc (*lv_dl.p_xmlFreeDoc)
#define xmlFreeNode (*lv_dl.p_xmlFreeNode)
#define xmlGetProp (*lv_dl.p_xmlGetProp)
#define xmlNewChild (*lv_dl.p_xmlNewChild)
#define xmlNewDoc (*lv_dl.p_xmlNewDoc)
#define xmlNewNode (*lv_dl.p_xmlNewNode)
#define xmlNewNs (*lv_dl.p_xmlNewNs)
#define xmlNewProp (*lv_dl.p_xmlNewProp)
#define xmlNewTextChild (*lv_dl.p_xmlNewTextChild)
#define xmlNodeAddContent (*lv_dl.p_xmlNodeAddContent)
#define xmlNodeGetContent (*lv_dl.p_xmlNodeGetContent)
#define xmlNodeSetContent (*lv_dl.p_xmlNodeSetContent)
#define xmlReadMemory (*lv_dl.p_xmlReadMemory)
#define xmlSetNs (*lv_dl.p_xmlSetNs)
#define xmlSetProp (*lv_dl.p_xmlSetProp)
#define xmlStrcmp (*lv_dl.p_xmlStrcmp)
#define xmlUnlinkNode (*lv_dl.p_xmlUnlinkNode)
#define xmlXPathEvalExpression (*lv_dl.p_xmlXPathEvalExpression)
#define xmlXPathFreeContext (*lv_dl.p_xmlXPathFreeContext)
#define xmlXPathFreeObject (*lv_dl.p_xmlXPathFreeObject)
#define xmlXPathNewContext (*lv_dl.p_xmlXPathNewContext)
#endif

#endif
